"""How the order API is served: uvicorn embedded in the caller's loop, answering every request.

Two things differ from a plain ``uvicorn.Server``:

* :class:`EmbeddedServer` installs no signal handlers: the process that embeds it (``serve``,
  the TUI, a test) owns SIGINT/SIGTERM.
* :class:`PipelinedHttpToolsProtocol` answers every complete request before it reports bad
  bytes that follow it on the same connection. httptools parses everything a ``recv``
  brought at once; when a valid request is followed (pipelined) by garbage, the parser fails
  on the garbage while the valid request's ASGI task is still running, and uvicorn's protocol
  then writes its 400 and closes the connection at once. The first request still runs — an
  order is placed — but its 201 is written to a closed transport: the client only sees the
  400 and retries an order that exists. (uvicorn's h11 protocol does not parse ahead of the
  request in progress, so it does not have this problem, but it costs more CPU per request.)
  Here the 400 waits until the requests before it have been answered, and nothing more is
  read meanwhile.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle


class EmbeddedServer(uvicorn.Server):
    """uvicorn without signal handling: the process that embeds it owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def install_signal_handlers(self) -> None:  # older uvicorn releases call this instead
        return None


class PipelinedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with its 400 held back behind unanswered requests."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._running: RequestResponseCycle | None = None
        self._held_400: str | None = None

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        self._running = cycle
        super()._start_asgi_task(cycle, app)

    def send_400_response(self, msg: str) -> None:
        broken = self.cycle
        if broken is not None and broken.more_body:
            # The bad bytes are inside this request: it gets the 400, not an answer.
            queued = next((entry for entry in self.pipeline if entry[0] is broken), None)
            if queued is None:
                # Its ASGI task runs and waits for the rest of the body: closing tells it so.
                super().send_400_response(msg)
                return
            self.pipeline.remove(queued)
        if self._all_answered():
            super().send_400_response(msg)
            return
        self._held_400 = msg
        self.flow.pause_reading()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._held_400 is None or self.transport.is_closing() or not self._all_answered():
            return
        msg, self._held_400 = self._held_400, None
        self._unset_keepalive_if_required()
        super().send_400_response(msg)

    def _all_answered(self) -> bool:
        running = self._running
        return not self.pipeline and (running is None or running.response_complete)


def api_server(app: Any, host: str, port: int) -> EmbeddedServer:
    """The API's server, configured as every orderdeck process serves it."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=PipelinedHttpToolsProtocol,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
        server_header=False,
        # No proxy sits in front of it by default: skip the X-Forwarded-* rewriting layer.
        proxy_headers=False,
    )
    return EmbeddedServer(config)
