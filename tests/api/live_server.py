"""The API on a real socket: uvicorn built by ``http_server.build_server``, as the runtime does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.types import ASGIApp

from orderdeck.http_server import ConnectionLimits, build_server

START_TIMEOUT_S = 10.0


@contextlib.asynccontextmanager
async def live_server(
    app: ASGIApp, *, host: str = "127.0.0.1", limits: ConnectionLimits | None = None
) -> AsyncIterator[int]:
    """Serve ``app`` on a free port of ``host`` in this loop; yields the port."""
    server = build_server(app, host, 0, limits)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            while not server.started:
                if task.done():
                    task.result()
                    raise AssertionError("the server stopped before it started")
                await asyncio.sleep(0.01)
        port: int = server.servers[0].sockets[0].getsockname()[1]
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
