"""Fixtures for the store's engine tests: a second writer process on the same SQLite file.

(`store` and `db_path` come from tests/conftest.py.)"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WRITER_SCRIPT = Path(__file__).parent / "helpers" / "writer.py"
STARTUP_TIMEOUT_S = 15


class WriterProcess:
    """tests/store/helpers/writer.py running in its own interpreter, spoken to by lines."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def line(self) -> str:
        """The next complete line, or "" at end of output (a cut-off last line counts as none)."""
        assert self.proc.stdout is not None
        raw = await self.proc.stdout.readline()
        return raw.decode().rstrip("\n") if raw.endswith(b"\n") else ""

    async def expect(self, text: str) -> None:
        line = await self.line()
        assert line == text, f"writer said {line!r}, expected {text!r}; stderr: {await self.stderr()}"

    async def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        await self.proc.stdin.drain()

    async def stderr(self) -> str:
        """Everything on stderr; waits for the process to end (kills it if it has not)."""
        if self.proc.returncode is None:
            self.proc.kill()
        assert self.proc.stderr is not None
        return (await self.proc.stderr.read()).decode()


SpawnWriter = Callable[[Path, str, str, int], Awaitable[WriterProcess]]


@pytest.fixture
async def spawn_writer() -> AsyncIterator[SpawnWriter]:
    """Start writer.py on a database; returns once it has opened the store ("ready")."""
    started: list[asyncio.subprocess.Process] = []

    async def spawn(path: Path, mode: str, name: str, number: int) -> WriterProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(WRITER_SCRIPT), str(path), mode, name, str(number),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
        started.append(proc)
        writer = WriterProcess(proc)
        async with asyncio.timeout(STARTUP_TIMEOUT_S):
            await writer.expect("ready")
        return writer

    yield spawn
    for proc in started:
        if proc.returncode is None:
            proc.kill()
        await proc.communicate()
