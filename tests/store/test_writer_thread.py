"""The writer's own thread (store.sqlite.writer.GroupCommitWriter): whatever a batch does, its
callers are answered and the writer goes on; a store that is never closed does not keep its
process alive; a closed store refuses writes. On SQLite and PostgreSQL (`store`, conftest)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from store import Store
from store.errors import StoreUnavailable
from store.models import ExecutionFilter, StartRequest
from store.sqlite.jobs import WriteContext, start_job

REPO = Path(__file__).resolve().parents[2]


class Escapes(BaseException):
    """Not an Exception: a job's savepoint does not catch it, so it leaves the whole batch."""


async def test_a_batch_that_breaks_fails_its_callers_writes_nothing_and_the_writer_goes_on(
    store: Store,
) -> None:
    writer = store._backend._writer  # type: ignore[attr-defined]
    ctx = store._backend._context()  # type: ignore[attr-defined]
    assert isinstance(ctx, WriteContext)
    doomed = start_job(StartRequest(task_id="doomed"), ctx)

    def insert_then_escape(tx: object) -> None:
        doomed(tx)  # the insert happens, then the batch is left by an exception no savepoint takes
        raise Escapes("a bug in the writer")

    async with asyncio.timeout(30):
        with pytest.raises(StoreUnavailable, match="Escapes"):
            await writer.submit(insert_then_escape)
        assert len(writer.running) == 0  # the rolled-back insert left no running execution behind
        kept = await store.start(StartRequest(task_id="kept"))  # the transaction was not left open
    assert (await store.list_executions(ExecutionFilter(task_id="doomed"))).executions == []
    assert [e.span_id for e in (await store.list_executions(ExecutionFilter(task_id="kept"))).executions] == [
        kept.execution.span_id
    ]


async def test_a_closed_store_refuses_writes(store: Store) -> None:
    await store.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        await store.start(StartRequest(task_id="late"))
    await store.close()  # closing twice is harmless


def test_a_store_that_is_never_closed_lets_its_process_exit(database_url: str) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio
        from store import Store
        from store.models import StartRequest

        async def main():
            store = await Store.open({database_url!r})
            await store.start(StartRequest(task_id="left-open"))
            print("written", flush=True)  # and return without store.close()

        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "written"


def handles_on(path: Path) -> list[str]:
    """This process's open file descriptors on the database file or its WAL and shared-memory files."""
    fds = Path("/proc/self/fd")
    targets = []
    for fd in fds.iterdir():
        try:
            targets.append(os.readlink(fd))
        except OSError:
            continue  # closed between listing and reading
    return [t for t in targets if t.startswith(str(path))]


async def test_closing_a_sqlite_store_lets_go_of_every_handle_on_its_file(db_path: Path) -> None:
    store = await Store.open(str(db_path))
    await store.start(StartRequest(task_id="t"))
    assert handles_on(db_path)
    await store.close()
    assert handles_on(db_path) == []
