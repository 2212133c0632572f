"""Slow clients time out: uvicorn's HTTP protocol with a deadline on request headers and on body gaps.

uvicorn only times out an idle keep-alive connection after a response, and any byte received cancels
that timer. A client that connects and sends nothing, or sends its headers a byte at a time
(slowloris), or stops halfway through a body, holds a connection and its memory for ever; enough of
them exhaust the file descriptors of every web worker.

- REQUEST_HEADER_TIMEOUT_S (default 10): from the connection's start, or from a request's first byte,
  until its headers are complete. Past it the connection is closed (nothing was parsed that could be
  answered).
- REQUEST_BODY_TIMEOUT_S (default 30): the longest gap between two pieces of a request body. Past it
  the client gets 408 (when no answer has started) and the connection is closed; the application sees
  `http.disconnect`. While the server itself has paused reading (its buffer is full because the
  application has not read yet) the client is not to blame: the clock restarts.
WebSocket upgrades are not affected: the timers stop when the headers are complete and a WebSocket
never arms the body timer.
"""

import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def _limits() -> tuple[float, float]:
    from django.conf import settings

    return settings.REQUEST_HEADER_TIMEOUT_S, settings.REQUEST_BODY_TIMEOUT_S


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.header_timeout, self.body_timeout = _limits()
        self._header_timer = None
        self._body_timer = None

    def connection_made(self, transport):
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc):
        self._cancel_timers()
        super().connection_lost(exc)

    def on_message_begin(self):
        super().on_message_begin()
        if self._header_timer is None:  # a keep-alive connection's next request
            self._arm_header_timer()

    def on_headers_complete(self):
        self._cancel(self._header_timer)
        self._header_timer = None
        super().on_headers_complete()
        if not self.parser.should_upgrade():
            self._arm_body_timer()

    def on_body(self, body: bytes):
        self._arm_body_timer()
        super().on_body(body)

    def on_message_complete(self):
        self._cancel(self._body_timer)
        self._body_timer = None
        super().on_message_complete()

    # Timers
    def _arm_header_timer(self):
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _arm_body_timer(self):
        self._cancel(self._body_timer)
        self._body_timer = self.loop.call_later(self.body_timeout, self._body_too_slow)

    @staticmethod
    def _cancel(timer):
        if timer is not None:
            timer.cancel()

    def _cancel_timers(self):
        self._cancel(self._header_timer)
        self._cancel(self._body_timer)
        self._header_timer = self._body_timer = None

    def _headers_too_slow(self):
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def _body_too_slow(self):
        self._body_timer = None
        if self.transport.is_closing():
            return
        if self.flow.read_paused:  # the server, not the client, is behind
            self._arm_body_timer()
            return
        if self.cycle is not None and not self.cycle.response_started:
            message = json.dumps(
                {
                    "detail": f"the request body stalled for more than {self.body_timeout:g} s "
                    "(REQUEST_BODY_TIMEOUT_S); send it without pauses",
                }
            ).encode()
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                b"content-length: " + str(len(message)).encode() + b"\r\nconnection: close\r\n\r\n" + message
            )
        self.transport.close()
