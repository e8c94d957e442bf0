"""`task-history stdio`: the SDK's stdio transport with stdin read as bytes, so broken text in a
message is marked (server.wire_text) and refused by field name instead of being replaced by U+FFFD
and stored (the SDK decodes stdin with errors="replace"), or left unanswered (a lone surrogate made
the line unparseable, so the client waited forever for a reply).

As the SDK does for the stdin it claims, fd 0 points at the null device while serving, so a child
process or a stray read sees EOF rather than stealing protocol bytes; it is restored on exit."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

import anyio
from mcp.server.stdio import stdio_server

from server.wire_text import mark_broken_text


async def serve_stdio(server: Any) -> None:
    """Run `server` (an MCPServer) over stdin/stdout until stdin closes: MCPServer.run_stdio_async
    with our stdin (the SDK offers no hook for it, hence its low-level server)."""
    lowlevel = server._lowlevel_server
    with _claimed_stdin() as wire:
        async with stdio_server(stdin=_MarkedLines(wire)) as (read_stream, write_stream):  # type: ignore[arg-type]
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())


class _MarkedLines:
    """The lines of the wire as text, broken characters marked; iterated like an anyio AsyncFile."""

    def __init__(self, wire: BinaryIO) -> None:
        self._lines = anyio.wrap_file(wire)

    async def __aiter__(self) -> AsyncIterator[str]:
        async for line in self._lines:
            yield mark_broken_text(line).decode("utf-8")


@contextmanager
def _claimed_stdin() -> Iterator[BinaryIO]:
    saved = os.dup(0)  # the wire; fd 0 is pointed back at it on exit
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.close(null_fd)
    try:
        with os.fdopen(os.dup(saved), "rb") as wire:
            yield wire
    finally:
        os.dup2(saved, 0)
        os.close(saved)
