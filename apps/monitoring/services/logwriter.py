"""One writer thread per process that moves prediction-log lines from memory into the database.

The request path only appends to an in-process buffer (a deque under a lock: no I/O, no
serialisation); the thread takes what has gathered, up to `batch_max` lines, and stores it with one
bulk INSERT … ON CONFLICT DO NOTHING in its own connection. Under load batches grow by themselves
(lines gather while the previous insert runs); at rest a line waits only for the thread to wake.

Faults, and what each costs:
- A database error (connection terminated, server restarting, connections refused, failover) puts
  the batch back at the head of the buffer; the thread closes its connection and retries, at once
  and then with a backoff of up to BACKOFF_MAX_S. A batch whose commit reached PostgreSQL but whose
  acknowledgement did not is stored again, and the unique (request_id, model_version) makes that a
  no-op: nothing lost, nothing twice.
- Redis has no part in storing a line, so a Redis restart loses none. It carries what this writer
  reports (`report`): the Prometheus counters, summed here and sent as soon as there are some, and
  the writer's progress for readers in other processes; both wait here while Redis is away.
- The buffer holds at most `capacity` lines; past it a new line is dropped, counted (`dropped`) and
  logged, so a long database outage costs the newest lines, never the process's memory.
- On exit (`close`, from the ASGI lifespan shutdown under uvicorn, or atexit) the thread has up to
  `shutdown_s` to store what is left, retrying as above. A SIGKILLed process loses what it had not
  stored: with the database up, the lines of the last insert plus one wake-up (milliseconds); during
  an outage, everything buffered since it began.

A line whose deployment or model version the writer's connection cannot see is held back, not
dropped: it may belong to a transaction that has not committed yet (a caller that creates a
deployment and predicts in one transaction, as the test suite does), whose own `flush` stores it in
the caller's connection. The writer tries a held line once more after `orphan_grace_s` and then
drops it as a deleted deployment's; a flush is the last word and drops what it cannot see either;
at exit held lines are dropped untried. Held lines are not `pending`: nothing waits for them but
their own transaction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from django.db import DEFAULT_DB_ALIAS, DatabaseError, InterfaceError, connections

logger = logging.getLogger("apps.monitoring.services.logbuffer")

APPLICATION_NAME = "mlops-prediction-log-writer"  # how the writer's connection shows in pg_stat_activity
HEARTBEAT_S = 0.1  # an idle writer reports its progress this often (readers in other processes wait on it)
REPORT_EVERY_S = 0.05  # progress at most this often while busy
IDLE_CLOSE_S = 0.25  # the connection is given back after this long without storing a row
BACKOFF_MAX_S = 1.0
COMPLAIN_EVERY_S = 10.0


class LogWriter:
    """The buffer, its thread and their bookkeeping; storage and reporting are passed in.

    `store(entries, background) -> list` inserts lines in the calling thread's connection and returns
    the ones whose deployment or version it cannot see; it raises DatabaseError when the database
    fails. `background` is true in the writer thread (apps.monitoring.services.logbuffer.logs_store
    then bounds its lock waits).
    `report(counters, progress)` sends {counter field: [count, latency sum]} and the progress
    {"c": caught-up wall time, "p": pending lines, "d": lines dropped so far, "t": now}, None when
    the writer ends.
    """

    def __init__(
        self,
        *,
        store: Callable[[list], list],
        report: Callable[[dict, dict | None], None],
        capacity: int,
        batch_max: int = 1000,
        shutdown_s: float = 10.0,
        orphan_grace_s: float = 30.0,
    ):
        self._store = store
        self._report = report
        self.capacity = capacity
        self.batch_max = batch_max
        self.shutdown_s = shutdown_s
        self.orphan_grace_s = orphan_grace_s
        self._cond = threading.Condition()
        self._queue: deque[dict] = deque()
        self._held: list[tuple[float, dict]] = []  # (first seen, monotonic; line)
        self._draining = False  # one drainer at a time: the thread, or a caller of `flush`
        self._in_hand = 0  # queued lines the drainer has taken and not yet settled
        self._accepted = 0  # lines ever queued; `_taken` of them have left the queue (put-backs subtracted)
        self._taken = 0
        self._counters: dict[str, list] = {}
        self._thread: threading.Thread | None = None
        self._stopping = False
        # Every line pushed before this wall-clock time is stored or dropped (held ones aside): what
        # readers in other processes wait on before they read the table.
        self.caught_up = time.time()
        self.stored = 0
        self.dropped = 0
        self._drops_unlogged = 0
        self._drop_logged_at = -COMPLAIN_EVERY_S
        self._failing_since: float | None = None
        self._complained_at = -COMPLAIN_EVERY_S
        self._reported_at = -REPORT_EVERY_S
        self._report_retry_at = 0.0
        self._stored_rows_at = 0.0

    # --- the request path -------------------------------------------------------------------------

    def push(self, entries: list[dict], fields: list[str]) -> None:
        """Queues lines and counts them under their Prometheus counter fields; never blocks on I/O."""
        with self._cond:
            for entry, field in zip(entries, fields):
                counter = self._counters.get(field)
                if counter is None:
                    self._counters[field] = [1, entry["l"]]
                else:
                    counter[0] += 1
                    counter[1] += entry["l"]
            room = self.capacity - len(self._queue) - self._in_hand - len(self._held)  # all of them are in memory
            if room >= len(entries):
                self._queue.extend(entries)
                self._accepted += len(entries)
            else:
                kept = max(room, 0)
                self._queue.extend(entries[:kept])
                self._accepted += kept
                self._drop(len(entries) - kept)
            if self._thread is None and not self._stopping:
                self._thread = threading.Thread(target=self._run, name="prediction-log-writer", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _drop(self, count: int) -> None:
        # Under the lock. Counted at once, logged at most every COMPLAIN_EVERY_S (a full buffer under
        # load would otherwise log on every request).
        self.dropped += count
        self._drops_unlogged += count
        now = time.monotonic()
        if now - self._drop_logged_at >= COMPLAIN_EVERY_S:
            logger.error(
                "prediction log buffer full (%d lines): dropped %d new line(s), %d since this process started",
                self.capacity,
                self._drops_unlogged,
                self.dropped,
            )
            self._drop_logged_at = now
            self._drops_unlogged = 0

    # --- readers ----------------------------------------------------------------------------------

    def pending(self) -> int:
        """Lines in this process not yet stored: queued or in an insert (held ones aside)."""
        with self._cond:
            return len(self._queue) + self._in_hand

    def held(self) -> int:
        """Lines held back because the writer's connection cannot see their deployment or version."""
        with self._cond:
            return len(self._held)

    def flush(self, *, wait_s: float, batch_max: int | None = None) -> int:
        """Stores, in the caller's thread and connection (so inside its transaction), every line pushed
        before the call and the held-back ones, dropping what that connection cannot see either;
        waits up to `wait_s` for an insert the thread has in hand (0: return at once if it has one).
        Returns the lines this call stored; raises DatabaseError with the lines back in the buffer."""
        deadline = time.monotonic() + wait_s
        with self._cond:
            target = self._accepted
        stored, first = 0, True
        while True:
            with self._cond:
                if self._taken >= target and not self._draining and not (first and self._held):
                    break
            outcome = self._drain_once(
                deadline=deadline, take_held=first, batch_max=batch_max or self.batch_max, foreground=True
            )
            if outcome is None:
                break  # the thread still has an insert in hand at the deadline
            stored += outcome
            first = False
        self._send_report(force=True)
        return stored

    # --- draining ---------------------------------------------------------------------------------

    def _drain_once(self, *, deadline: float | None, take_held: bool, batch_max: int, foreground: bool) -> int | None:
        """Takes up to `batch_max` queued lines (and the held ones: all of them when `take_held`, else
        those past their grace) and stores them in this thread's connection: a `flush` caller's
        (`foreground`) or the writer's, named for pg_stat_activity. Returns the lines stored, None
        when another drainer kept the buffer past `deadline`."""
        with self._cond:
            while self._draining:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            started = time.time()
            now = time.monotonic()
            count = min(batch_max, len(self._queue))
            batch = [self._queue.popleft() for _ in range(count)]
            self._taken += count
            retry = []
            if self._held and (take_held or self._held[0][0] <= now - self.orphan_grace_s):
                if take_held:
                    retry, self._held = self._held, []
                else:
                    retry = [item for item in self._held if item[0] <= now - self.orphan_grace_s]
                    self._held = [item for item in self._held if item[0] > now - self.orphan_grace_s]
            whole = not self._queue  # everything pushed before `started` is now in hand
            if not batch and not retry:
                if whole:
                    self.caught_up = max(self.caught_up, started)
                return 0
            self._draining = True
            self._in_hand = len(batch)
        lines = batch + [line for _, line in retry]
        try:
            if not foreground:
                self._name_connection()
            unseen = self._store(lines, background=not foreground)
        except (DatabaseError, InterfaceError):  # InterfaceError: a connection already closed
            with self._cond:
                self._queue.extendleft(reversed(batch))
                self._taken -= len(batch)
                self._held = retry + self._held
                self._settle()
            raise
        except Exception:
            # A bug, not a fault: retrying would stop every line behind these forever.
            logger.exception("dropping %d prediction log line(s) that could not be stored", len(lines))
            unseen, failed = [], len(lines)
        else:
            failed = 0
        retried = {id(line) for _, line in retry}
        with self._cond:
            late = 0
            for line in unseen:
                # A line seen for the first time is held; a retried one, or any a flush cannot see, is done for.
                if foreground or id(line) in retried or self._stopping:
                    late += 1
                else:
                    self._held.append((now, line))
            if late:
                logger.warning("dropping %d prediction log(s) of deleted deployments or versions", late)
            self.dropped += late + failed
            done = len(lines) - len(unseen) - failed
            self.stored += done
            if whole:
                self.caught_up = max(self.caught_up, started)
            self._settle()
        if done:
            self._stored_rows_at = time.monotonic()
        return done

    def _settle(self) -> None:
        self._draining = False
        self._in_hand = 0
        self._cond.notify_all()

    def _run(self) -> None:
        backoff = 0.0
        while True:
            with self._cond:
                if not self._queue and not self._stopping and not self._held_due():
                    self._cond.wait(HEARTBEAT_S)
                stopping = self._stopping
                if stopping and self._held:
                    # Tried once already: their transaction never flushed them, and it will not now.
                    # (Debug: at interpreter exit the log handlers may already be closed.)
                    logger.debug(
                        "dropping %d held prediction log(s) at exit: their deployment was never visible",
                        len(self._held),
                    )
                    self.dropped += len(self._held)
                    self._held = []
            self._send_report()  # counters first: a scrape right after an answer sees it
            try:
                self._drain_once(deadline=None, take_held=False, batch_max=self.batch_max, foreground=False)
            except (DatabaseError, InterfaceError) as exc:
                self._close_connection()
                self._failed(exc)
                # The first retry is immediate: a terminated connection only needs a new one.
                with self._cond:
                    self._cond.wait(backoff)
                backoff = min(BACKOFF_MAX_S, max(0.05, backoff * 2))
            else:
                if self._failing_since is not None:
                    logger.warning(
                        "prediction log writer: the database takes lines again after %.1f s",
                        time.monotonic() - self._failing_since,
                    )
                    self._failing_since = None
                backoff = 0.0
            self._send_report()
            with self._cond:
                idle = not self._queue
                done = stopping and idle and not self._draining
            if idle and time.monotonic() - self._stored_rows_at > IDLE_CLOSE_S:
                self._close_connection()
            if done:
                self._send_report(force=True, final=True)
                self._close_connection()
                return

    def _held_due(self) -> bool:
        return bool(self._held) and self._held[0][0] <= time.monotonic() - self.orphan_grace_s

    def _failed(self, exc: Exception) -> None:
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        if now - self._complained_at >= COMPLAIN_EVERY_S:
            first_line = (str(exc).strip().splitlines() or [""])[0]
            logger.warning(
                "prediction log writer: the database refused a batch (%s: %s); %d line(s) kept, retrying",
                type(exc).__name__,
                first_line,
                self.pending(),
            )
            self._complained_at = now

    @staticmethod
    def _name_connection() -> None:
        connection = connections[DEFAULT_DB_ALIAS]
        if connection.connection is None and connection.vendor == "postgresql":
            connection.ensure_connection()
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('application_name', %s, false)", [APPLICATION_NAME])

    @staticmethod
    def _close_connection() -> None:
        connection = connections[DEFAULT_DB_ALIAS]
        if connection.connection is None:
            return
        try:
            connection.close()
        except (DatabaseError, InterfaceError):  # InterfaceError: a connection already closed
            pass  # a broken socket: closing it is all that was wanted

    # --- reporting --------------------------------------------------------------------------------

    def _send_report(self, *, force: bool = False, final: bool = False) -> None:
        # Counters go out as soon as there are some, the progress at most every REPORT_EVERY_S
        # (HEARTBEAT_S when idle); after a failure, nothing for a second.
        now = time.monotonic()
        if not force and (
            now < self._report_retry_at or (not self._counters and now - self._reported_at < REPORT_EVERY_S)
        ):
            return
        with self._cond:
            counters, self._counters = self._counters, {}
            progress = (
                None
                if final
                else {"c": self.caught_up, "p": len(self._queue) + self._in_hand, "d": self.dropped, "t": time.time()}
            )
        try:
            self._report(counters, progress)
        except Exception as exc:
            with self._cond:
                for field, (count, latency) in counters.items():
                    counter = self._counters.setdefault(field, [0, 0.0])
                    counter[0] += count
                    counter[1] += latency
            self._report_retry_at = time.monotonic() + 1.0  # after the call: a connect may have taken seconds
            logger.debug("prediction log writer: report failed (%s); kept for the next one", exc)
        self._reported_at = now

    # --- the end ----------------------------------------------------------------------------------

    def close(self, timeout: float | None = None) -> int:
        """Stops the thread once it stored what is left (waiting up to `timeout`, default
        `shutdown_s`); returns the lines still unstored, logged as lost."""
        with self._cond:
            self._stopping = True
            thread = self._thread
            self._cond.notify_all()
        if thread is not None:
            thread.join(self.shutdown_s if timeout is None else timeout)
        left = self.pending()
        if left:
            logger.error("prediction log writer: %d line(s) not stored before exit", left)
        return left
