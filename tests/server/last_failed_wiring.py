"""Serve server.tools_debug.tasks_last_failed, the one with a cursor and stale_running.

server/tools.py is to import it in place of its own tasks_last_failed; until it does, the
`wired` fixture swaps it into the registry the server is built from (a no-op once it has).
Import the fixture into a test module to use it."""

from __future__ import annotations

import pytest

import server.tools
from server import tools_debug
from server.toolkit import ToolSpec


@pytest.fixture
def wired(monkeypatch: pytest.MonkeyPatch) -> None:
    specs = tuple(
        ToolSpec(tools_debug.tasks_last_failed, spec.annotations, spec.title)
        if spec.name == "tasks_last_failed"
        else spec
        for spec in server.tools.READ_TOOLS
    )
    monkeypatch.setattr(server.tools, "READ_TOOLS", specs)
