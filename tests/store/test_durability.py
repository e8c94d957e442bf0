"""kill -9 in the middle of a write load: every acknowledged write survives, and the file opens
cleanly and takes new writes afterwards. The writer is a real process (tests/store/helpers/writer.py)
that prints each span_id only after the `await` that wrote it has returned."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from store import Store
from store.models import FinishRequest, StartRequest

TIMEOUT_S = 20


async def acknowledged_until_killed(writer: Any, finished_wanted: int) -> dict[str, str]:
    """Read "ack SPAN STATUS" lines until `finished_wanted` executions were acknowledged as
    finished, SIGKILL the writer, then take whatever acknowledgements were already in the pipe."""
    acked: dict[str, str] = {}

    def finished() -> int:
        return sum(status != "running" for status in acked.values())

    async with asyncio.timeout(TIMEOUT_S):
        while finished() < finished_wanted:
            line = await writer.line()
            assert line, f"the writer stopped early: {await writer.stderr()}"
            _, span_id, status = line.split()
            acked[span_id] = status
        os.kill(writer.pid, signal.SIGKILL)
        while line := await writer.line():
            _, span_id, status = line.split()
            acked[span_id] = status
        assert await writer.proc.wait() == -signal.SIGKILL
    return acked


def stored_statuses(path: Path) -> dict[str, str]:
    with closing(sqlite3.connect(path)) as conn:
        return dict(conn.execute("SELECT span_id, status FROM executions"))


@pytest.mark.parametrize("finished_wanted", [20, 300])
async def test_a_killed_writer_loses_no_acknowledged_write(
    db_path: Path, spawn_writer: Any, finished_wanted: int
) -> None:
    writer = await spawn_writer(db_path, "loop", "crash", 8)
    acked = await acknowledged_until_killed(writer, finished_wanted)
    stored = stored_statuses(db_path)
    assert sorted(acked.keys() - stored.keys()) == []
    changed = {span: (status, stored[span]) for span, status in acked.items() if status != "running"}
    assert {span: pair for span, pair in changed.items() if pair[0] != pair[1]} == {}


async def test_after_a_kill_the_database_is_intact_and_takes_writes(db_path: Path, spawn_writer: Any) -> None:
    writer = await spawn_writer(db_path, "loop", "crash", 8)
    await acknowledged_until_killed(writer, 100)
    with closing(sqlite3.connect(db_path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    stored = stored_statuses(db_path)
    async with await Store.open(str(db_path)) as store:
        still_running = [span for span, status in stored.items() if status == "running"]
        for span_id in still_running:  # executions the crash left open can still be closed
            await store.finish(FinishRequest(span_id=span_id, status="cancelled"))
        started = await store.start(StartRequest(task_id="after-the-crash"))
        await store.finish(FinishRequest(span_id=started.execution.span_id, status="success"))
        assert (await store.list_executions(limit=1)).total == len(stored) + 1
        assert (await store.get(started.execution.span_id)).execution.status == "success"
