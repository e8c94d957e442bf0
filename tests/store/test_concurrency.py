"""Many writers at once: in one process through one Store (group commit), and two processes on
one file. Nothing acknowledged is lost, nothing is written twice, nobody sees "database is locked",
and keyset cursors stay exact while rows are being inserted."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import struct
import threading
import time
from collections import Counter
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from store import Store
from store.backend import BackendOptions
from store.errors import StoreUnavailable
from store.models import (
    EventRequest,
    ExecutionFilter,
    FinishRequest,
    RecordRequest,
    StartRequest,
    StartResult,
)

T0 = datetime(2025, 11, 4, tzinfo=UTC)
TIMEOUT_S = 20


def count_rows(path: Path, sql: str) -> int:
    with closing(sqlite3.connect(path)) as conn:
        return int(conn.execute(sql).fetchone()[0])


def wal_commits(path: Path) -> tuple[tuple[int, int, int], int]:
    """(WAL header identity, number of commit frames) read from the -wal file itself.

    A WAL frame header holds the database size after the commit for the last frame of a
    transaction and 0 for the others, so commit frames count transactions. Frames belong to
    the current WAL while their salts match the header's."""
    data = Path(f"{path}-wal").read_bytes()
    _magic, _version, page_size, checkpoint_seq, salt1, salt2 = struct.unpack(">6I", data[:24])
    frame_size = 24 + page_size
    commits = 0
    for offset in range(32, len(data) - frame_size + 1, frame_size):
        _page, size_after_commit, s1, s2 = struct.unpack(">4I", data[offset : offset + 16])
        if (s1, s2) != (salt1, salt2):
            break
        commits += size_after_commit != 0
    return (checkpoint_seq, salt1, salt2), commits


async def start_log_finish(store: Store, n: int) -> tuple[str, str]:
    task_id = f"task-{n % 10}"  # ten coroutines share each task row
    started = await store.start(StartRequest(task_id=task_id, actor=f"writer-{n}"))
    span_id = started.execution.span_id
    if n % 4 == 0:
        await store.log_event(
            EventRequest(event_type="ci.progress", task_id=task_id, span_id=span_id, data={"n": n})
        )
    if n % 5 == 0:
        await store.list_executions(ExecutionFilter(task_id=task_id))  # reads interleave with the writes
    finished = await store.finish(FinishRequest(span_id=span_id, status="success", result=f"r{n}"))
    return span_id, finished.execution.status


async def test_a_hundred_concurrent_writers_are_all_acknowledged_and_counted_exactly(db_path: Path) -> None:
    async with await Store.open(str(db_path)) as store, asyncio.timeout(TIMEOUT_S):
        results = await asyncio.gather(*(start_log_finish(store, n) for n in range(100)))
        page = await store.list_executions(limit=1)
        running = await store.list_executions(ExecutionFilter(status="running"), limit=1)
    assert len({span for span, _ in results}) == 100
    assert {status for _, status in results} == {"success"}
    assert (page.total, page.total_exact, running.total) == (100, True, 0)
    assert count_rows(db_path, "SELECT COUNT(*) FROM executions WHERE status = 'success'") == 100
    assert count_rows(db_path, "SELECT COUNT(*) FROM events WHERE event_type = 'ci.progress'") == 25


async def test_concurrent_writes_share_transactions_through_group_commit(db_path: Path) -> None:
    async with await Store.open(str(db_path)) as store:
        # An open read transaction on the first snapshot keeps checkpoints from restarting the WAL,
        # so every commit frame written below stays in the file to be counted.
        with closing(sqlite3.connect(db_path, isolation_level=None)) as pin:
            pin.execute("BEGIN")
            pin.execute("SELECT COUNT(*) FROM executions").fetchone()
            wal_before, commits_before = wal_commits(db_path)
            async with asyncio.timeout(TIMEOUT_S):
                await asyncio.gather(*(start_log_finish(store, n) for n in range(100)))
            wal_after, commits_after = wal_commits(db_path)
            pin.execute("COMMIT")
    writes = 100 + 100 + 25  # starts, finishes, events
    transactions = commits_after - commits_before
    assert wal_after == wal_before, "the WAL was restarted; the commit count would be wrong"
    assert 0 < transactions <= writes // 4, f"{writes} writes took {transactions} transactions"


async def test_two_processes_writing_one_file_lose_nothing_and_never_see_a_lock(
    db_path: Path, spawn_writer: Any
) -> None:
    """We keep writing for as long as the other process does, so the two contend for the lock throughout."""
    async with await Store.open(str(db_path)) as store:
        other = await spawn_writer(db_path, "batch", "other", 150)
        their_done = asyncio.Event()
        ours: list[str] = []

        async def our_writer() -> None:
            while not their_done.is_set() or len(ours) < 50:
                started = await store.start(StartRequest(task_id=f"ours-{len(ours)}"))
                await store.finish(FinishRequest(span_id=started.execution.span_id, status="success"))
                ours.append(started.execution.span_id)

        async def theirs() -> list[str]:
            lines = []
            while (line := await other.line()) not in ("done", ""):
                lines.append(line)
            their_done.set()
            assert line == "done", f"the other writer died: {await other.stderr()}"
            return lines

        async with asyncio.timeout(TIMEOUT_S):
            writers = [asyncio.create_task(our_writer()) for _ in range(10)]
            await other.go()
            their_lines, *_ = await asyncio.gather(theirs(), *writers)
            assert await other.proc.wait() == 0, await other.stderr()
    assert "locked" not in await other.stderr()
    their_spans = {line.split()[1] for line in their_lines if not line.endswith(" running")}
    assert len(their_spans) == 150
    with closing(sqlite3.connect(db_path)) as conn:
        # Counted here, not by list_executions: its total stops at COUNT_CAP, and our writers
        # may pass that on a fast machine.
        (count,) = conn.execute("SELECT COUNT(*) FROM executions").fetchone()
        stored = {
            span
            for (span,) in conn.execute(
                "SELECT span_id FROM executions WHERE status = 'success' OR status = 'failed'"
            )
        }
    assert stored == their_spans | set(ours) and count == 150 + len(ours)


def same_start(kind: str) -> StartRequest:
    if kind == "explicit key":
        return StartRequest(task_id="keyed", idempotency_key="nightly-2025-11-04")
    if kind == "scheduled_at":
        return StartRequest(task_id="keyed", trigger="scheduled", scheduled_at=T0)
    return RecordRequest(task_id="keyed", started_at=T0, status="success")


@pytest.mark.parametrize("kind", ["explicit key", "scheduled_at", "recorded started_at"])
async def test_twenty_concurrent_starts_with_one_key_make_exactly_one_execution(
    store: Store, kind: str
) -> None:
    request = same_start(kind)
    write = store.record if isinstance(request, RecordRequest) else store.start
    async with asyncio.timeout(TIMEOUT_S):
        results: list[StartResult] = await asyncio.gather(*(write(request) for _ in range(20)))  # type: ignore[arg-type]
    assert sorted(r.duplicate for r in results) == [False] + [True] * 19
    assert len({r.execution.span_id for r in results}) == 1
    assert (await store.list_executions()).total == 1


async def test_one_key_started_from_two_processes_at_once_makes_exactly_one_execution(
    db_path: Path, spawn_writer: Any
) -> None:
    key = "shared-key"
    async with await Store.open(str(db_path)) as store:
        other = await spawn_writer(db_path, "same-key", key, 20)
        async with asyncio.timeout(TIMEOUT_S):
            await other.go()
            ours = await asyncio.gather(
                *(store.start(StartRequest(task_id="keyed", idempotency_key=key)) for _ in range(20))
            )
            their_lines = []
            while (line := await other.line()) not in ("done", ""):
                their_lines.append(line.split())
            assert line == "done", f"the other writer died: {await other.stderr()}"
        total = (await store.list_executions()).total
    spans = {r.execution.span_id for r in ours} | {span for _, span, _ in their_lines}
    new = [r for r in ours if not r.duplicate] + [w for w in their_lines if w[2] == "new"]
    assert (len(their_lines), len(spans), len(new), total) == (20, 1, 1, 1)


@pytest.mark.parametrize(
    "filters", [ExecutionFilter(), ExecutionFilter(status="success")], ids=["all", "success"]
)
async def test_keyset_pages_skip_and_repeat_nothing_while_rows_are_inserted(
    store: Store, filters: ExecutionFilter
) -> None:
    before = await seed_for_paging(store)
    expected = {span for span, status in before.items() if filters.status in (None, status)}
    inserted = 0
    changed = asyncio.Condition()

    async def insert_forever() -> None:
        nonlocal inserted
        for n in range(10_000):
            await store.record(late_record(n))
            async with changed:
                inserted += 1
                changed.notify_all()

    async def after_inserts(count: int) -> None:
        async with changed:
            await changed.wait_for(lambda: inserted >= count)

    inserter = asyncio.create_task(insert_forever())
    seen: list[tuple[str, datetime]] = []
    try:
        async with asyncio.timeout(TIMEOUT_S):
            page = await store.list_executions(filters, limit=7)
            while True:
                seen += [(e.span_id, e.started_at) for e in page.executions]
                if not page.has_more:
                    break
                await after_inserts(inserted + 3)  # rows land between every two pages
                page = await store.list_executions(filters, limit=7, cursor=page.next_cursor)
    finally:
        inserter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await inserter
    counts = Counter(span for span, _ in seen)
    assert [span for span, n in counts.items() if n > 1] == []
    assert sorted(expected - counts.keys()) == []
    assert [t for _, t in seen] == sorted((t for _, t in seen), reverse=True)


async def seed_for_paging(store: Store) -> dict[str, str]:
    """60 executions over 40 distinct start times (so ties are broken by insertion order)."""
    spans = {}
    for n in range(60):
        status = "success" if n % 3 else "cancelled"
        req = RecordRequest(task_id=f"paged-{n}", started_at=T0 + timedelta(minutes=n % 40), status=status)
        spans[(await store.record(req)).execution.span_id] = status
    return spans


def late_record(n: int) -> RecordRequest:
    """Newer than everything, at the same instant as existing rows, or older than everything."""
    started = (
        T0 + timedelta(days=1, seconds=n),
        T0 + timedelta(minutes=n % 40),
        T0 - timedelta(minutes=n + 1),
    )[n % 3]
    return RecordRequest(task_id=f"late-{n}", started_at=started, status="success" if n % 2 else "cancelled")


# ---- opening a file another connection is writing ---------------------------------------------


def rollback_journal_file_being_written(path: Path) -> sqlite3.Connection:
    """A database not yet in WAL mode with another connection's write transaction open on it: what
    a process opening a fresh file meets while another one creates it."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE elsewhere (x)")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO elsewhere VALUES (1)")
    return holder


async def test_opening_waits_out_a_write_lock_for_as_long_as_busy_timeout_then_says_locked(
    db_path: Path,
) -> None:
    holder = rollback_journal_file_being_written(db_path)
    try:
        began = time.monotonic()
        with pytest.raises(StoreUnavailable, match="locked"):
            await Store.open(str(db_path), options=BackendOptions(busy_timeout_ms=300))
        # SQLite itself fails PRAGMA journal_mode = WAL at once here, busy handler or not.
        assert time.monotonic() - began >= 0.25
    finally:
        holder.close()


async def test_opening_goes_on_once_the_other_connection_commits(db_path: Path) -> None:
    holder = rollback_journal_file_being_written(db_path)
    release = threading.Timer(0.2, holder.execute, ("COMMIT",))
    release.start()
    try:
        async with await Store.open(str(db_path), options=BackendOptions(busy_timeout_ms=10_000)) as store:
            await store.start(StartRequest(task_id="after-the-lock"))
        with closing(sqlite3.connect(db_path)) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert conn.execute("SELECT x FROM elsewhere").fetchall() == [(1,)]
    finally:
        release.join()
        holder.close()
