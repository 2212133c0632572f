"""Live run logs over WebSocket.

ws/training/runs/<id>/?after=<seq>: joins the run's group FIRST, then replays the stored lines with
seq > after, then streams. A line committed before the replay query is replayed; one committed
after it is published after the join and so arrives through the group. Group messages that the
replay already covered (seq <= last replayed) are dropped here, and clients de-duplicate by seq too.

The group may also carry {"type": "run.batch", "messages": [...]} (one write's lines and progress,
in order); clients always receive the single messages.

ws/training/runs/: status changes of every run (group training-runs).
"""

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.core.roles import has_portal_role

from apps.core import live
from .selectors import LOG_PAGE_MAX, run_log_lines
from .services.runs import log_message, progress_message, status_message

CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_BAD_REQUEST = 4400


@database_sync_to_async
def _allowed(user) -> bool:
    return has_portal_role(user)


@database_sync_to_async
def _run_snapshot(run_id: int):
    from .models import TrainingRun
    from .selectors import run_epochs

    run = TrainingRun.objects.filter(pk=run_id).first()
    if run is None:
        return None
    epochs = run_epochs(run=run)
    return {"status": status_message(run), "progress": progress_message(run, epochs[-1].metrics) if epochs else None}


@database_sync_to_async
def _lines_after(run_id: int, after: int) -> list[dict]:
    return [log_message(line) for line in run_log_lines(run_id=run_id, after=after, limit=LOG_PAGE_MAX)]


class RunLogConsumer(AsyncJsonWebsocketConsumer):
    group = None
    replayed_to = 0

    async def connect(self):
        if not await _allowed(self.scope.get("user")):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        query = parse_qs(self.scope.get("query_string", b"").decode())
        raw_after = (query.get("after") or ["0"])[0]
        try:
            after = int(raw_after)
            if after < 0:
                raise ValueError
        except ValueError:
            await self.close(code=CLOSE_BAD_REQUEST)
            return
        snapshot = await _run_snapshot(run_id)
        if snapshot is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.group = live.run_group(run_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        cursor = after
        while True:
            lines = await _lines_after(run_id, cursor)
            for line in lines:
                await self.send_json(line)
                cursor = line["seq"]
            if len(lines) < LOG_PAGE_MAX:
                break
        self.replayed_to = cursor
        # Status and progress as of now (the replay may be long after the run ended).
        snapshot = await _run_snapshot(run_id)
        await self.send_json(snapshot["status"])
        if snapshot["progress"]:
            await self.send_json(snapshot["progress"])

    async def disconnect(self, code):
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        # The stream is one-way; a client resumes by reconnecting with ?after=<last seq>.
        return

    async def run_log(self, event):
        if event["seq"] <= self.replayed_to:
            return
        await self.send_json(event)

    async def run_batch(self, event):
        """Several messages of one write (log lines and progress, in order), sent one frame each."""
        for message in event["messages"]:
            if message["type"] == "run.log" and message["seq"] <= self.replayed_to:
                continue
            await self.send_json(message)

    async def run_progress(self, event):
        await self.send_json(event)

    async def run_status(self, event):
        await self.send_json(event)


class RunsConsumer(AsyncJsonWebsocketConsumer):
    """Status changes of any run, for run lists and dashboards."""

    joined = False

    async def connect(self):
        if not await _allowed(self.scope.get("user")):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.channel_layer.group_add(live.RUNS_GROUP, self.channel_name)
        self.joined = True
        await self.accept()

    async def disconnect(self, code):
        if self.joined:
            await self.channel_layer.group_discard(live.RUNS_GROUP, self.channel_name)

    async def receive_json(self, content, **kwargs):
        return

    async def run_status(self, event):
        await self.send_json(event)
