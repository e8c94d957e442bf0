"""SqliteBackend: the store on one SQLite file (WAL). Writes go to the single Writer,
reads to the ReaderPool; both sides speak only in store models."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from store.backend import BackendOptions
from store.errors import InvalidInput, NotFound
from store.models import (
    PATTERNS_SHOWN,
    RECENT_EVENTS_SHOWN,
    ErrorPattern,
    EventRequest,
    EventResult,
    Execution,
    ExecutionDetail,
    ExecutionFilter,
    ExecutionPage,
    Failure,
    FinishRequest,
    FinishResult,
    LastFailed,
    RecordRequest,
    StartRequest,
    StartResult,
    TaskStatus,
    TaskTimeline,
    TraceView,
)
from store.rules import Policy
from store.sqlite import queries as q
from store.sqlite import rows
from store.sqlite.analysis_reads import AnalysisMixin
from store.sqlite.events import event_job
from store.sqlite.history import HistoryMixin
from store.sqlite.jobs import WriteContext, finish_job, import_job, record_job, start_job
from store.sqlite.reader import ReaderPool, Snapshot
from store.sqlite.schema import migrate
from store.sqlite.writer import Writer
from store.timeutil import from_us, now_utc, to_us
from store.transfer import TransferMixin


def sqlite_path(database_url: str) -> str:
    """A plain path or a sqlite:/// URL, as a filesystem path."""
    if database_url.startswith("sqlite:///"):
        return database_url.removeprefix("sqlite:///") or ":memory:"
    if "://" in database_url:
        raise InvalidInput(
            "database_url",
            f"{database_url!r} is not a SQLite path",
            hint="Use a file path or sqlite:///path.",
        )
    return database_url


def connect_writer(path: str, options: BackendOptions) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=options.busy_timeout_ms / 1000
    )
    _enter_wal(conn, options.busy_timeout_ms / 1000)
    conn.execute(f"PRAGMA synchronous = {options.synchronous}")
    conn.execute(f"PRAGMA busy_timeout = {int(options.busy_timeout_ms)}")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _enter_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """PRAGMA journal_mode = WAL, waiting out another connection's write lock like busy_timeout
    does: SQLite answers "database is locked" at once, without its busy handler, when a file
    not yet in WAL mode is being written (another process opening a fresh database at the
    same moment, migrating it; an old file another tool writes)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(0.005)  # a back-off between attempts, as SQLite's own busy handler sleeps


class SqliteBackend(TransferMixin, HistoryMixin, AnalysisMixin):
    def __init__(
        self, writer: Writer, readers: ReaderPool, executor: ThreadPoolExecutor, policy: Policy
    ) -> None:
        self._writer = writer
        self._readers = readers
        self._executor = executor
        self._policy = policy

    @classmethod
    async def open(cls, path: str, policy: Policy, options: BackendOptions) -> SqliteBackend:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="task-history-writer")
        loop = asyncio.get_running_loop()
        conn = await loop.run_in_executor(executor, connect_writer, path, options)
        await loop.run_in_executor(executor, migrate, conn)
        readers = await ReaderPool.open(path, options.readers, options.busy_timeout_ms)
        return cls(Writer(conn, executor, options.write_batch_max), readers, executor, policy)

    async def close(self) -> None:
        await self._writer.close()
        await self._readers.close()
        self._executor.shutdown(wait=True)

    async def ping(self) -> None:
        async with self._readers.snapshot() as snap:
            await snap.one("SELECT 1")

    def _context(self) -> WriteContext:
        return WriteContext(policy=self._policy, now=now_utc())

    # ---- writes --------------------------------------------------------------------

    async def start(self, req: StartRequest) -> StartResult:
        return await self._writer.submit(start_job(req, self._context()))

    async def finish(self, req: FinishRequest) -> FinishResult:
        return await self._writer.submit(finish_job(req, self._context()))

    async def record(self, req: RecordRequest) -> StartResult:
        return await self._writer.submit(record_job(req, self._context()))

    async def log_event(self, req: EventRequest) -> EventResult:
        return await self._writer.submit(event_job(req, self._context()))

    async def import_execution(self, execution: Execution) -> StartResult:
        return await self._writer.submit(import_job(execution))

    # ---- reads ---------------------------------------------------------------------

    async def list_executions(
        self, filters: ExecutionFilter, limit: int, cursor: str | None
    ) -> ExecutionPage:
        position = q.decode_cursor(cursor, filters) if cursor else None
        page = await self._readers.query(*q.counted_page(filters, limit, position))
        if page:
            counted = int(page[0][0])
        elif position is None:
            counted = 0  # no match at all
        else:  # past the last page: the rows before the cursor still match
            counted = int((await self._readers.query(*q.count_capped(filters)))[0][0])
        has_more = len(page) > limit
        page = [row[1:] for row in page[:limit]]
        executions = [rows.execution_from(row[1:]) for row in page]
        return ExecutionPage(
            executions=executions, total=min(counted, q.COUNT_CAP), total_exact=counted <= q.COUNT_CAP,
            returned=len(executions), has_more=has_more,
            next_cursor=_next_cursor(page, filters) if has_more else None,
        )  # fmt: skip

    async def trace(self, trace_id: str) -> TraceView:
        async with self._readers.snapshot() as snap:
            executions = [rows.execution_from(r) for r in await snap.all(*q.trace_executions(trace_id))]
            events = [rows.event_from(r) for r in await snap.all(*q.trace_events(trace_id))]
        top = [e for e in executions if e.parent_span_id is None] or executions
        return TraceView(
            trace_id=trace_id, found=bool(executions or events), executions=executions, events=events,
            retry_count=sum(1 for e in executions if e.retry_of is not None),
            final_status=max(top, key=lambda e: (e.attempt, e.started_at)).status if top else None,
        )  # fmt: skip

    async def last_failed(
        self,
        limit: int,
        task_id: str | None,
        since: datetime | None,
        until: datetime | None,
        unique_errors: bool,
    ) -> LastFailed:
        window = (task_id, _us(since), _us(until))
        async with self._readers.snapshot() as snap:
            if unique_errors and (since is not None or until is not None):
                page_rows, found = await _unique_in_window(snap, window, limit)
            else:
                page_sql = (
                    q.last_failed_unique(task_id, limit) if unique_errors else q.last_failed(*window, limit)
                )
                page_rows = await snap.all(*page_sql)
                found = await snap.all(*q.error_patterns(*window, PATTERNS_SHOWN))
            page = [rows.execution_from(r) for r in page_rows]
            failures = [
                Failure(execution=e, recent_events=events)
                for e, events in zip(page[:limit], await _recent(snap, page[:limit]), strict=True)
            ]
        # Every pattern row carries the window's totals; a group without an example (a NULL
        # stack_hash) counts in them but is not shown.
        total, distinct = (int(found[0][-2]), int(found[0][-1])) if found else (0, 0)
        return LastFailed(
            failures=failures,
            error_patterns=[_pattern(r[:-2]) for r in found if r[8] is not None],
            total_failures=total, patterns_total=distinct, has_more=len(page) > limit,
        )  # fmt: skip

    async def get(self, span_id: str) -> ExecutionDetail:
        async with self._readers.snapshot() as snap:
            row = await snap.one(*q.execution_by_span(span_id))
            if row is None:
                raise NotFound(
                    "execution",
                    f"span_id {span_id}",
                    hint="Call tasks_list or tasks_last_failed to find a span_id.",
                )
            events = [rows.event_from(r) for r in await snap.all(*q.span_events(span_id))]
        return ExecutionDetail(execution=rows.execution_from(row), events=events)

    async def task_status(self, task_id: str) -> TaskStatus:
        sql = f"SELECT {rows.TASK_SELECT} FROM tasks WHERE task_id = ?"
        found = await self._readers.query(sql, (task_id,))
        if not found:
            raise NotFound(
                "task", f"task_id {task_id}", hint="Call tasks_list to see which task ids have history."
            )
        return rows.task_from(found[0])

    async def timeline(self, task_id: str, limit: int) -> TaskTimeline:
        async with self._readers.snapshot() as snap:
            task_row = await snap.one(f"SELECT {rows.TASK_SELECT} FROM tasks WHERE task_id = ?", (task_id,))
            executions = [rows.execution_from(r) for r in await snap.all(*q.task_executions(task_id, limit))]
            events = [rows.event_from(r) for r in await snap.all(*q.task_events(task_id, limit))]
            executions_total, events_total = await snap.one(*q.task_counts(task_id))
        return TaskTimeline(
            task_id=task_id, task=rows.task_from(task_row) if task_row else None,
            executions=executions[::-1], events=events[::-1], executions_total=executions_total,
            events_total=events_total,
            truncated=executions_total > len(executions) or events_total > len(events),
        )  # fmt: skip


def _us(moment: datetime | None) -> int | None:
    return None if moment is None else to_us(moment)


def _next_cursor(page: list[tuple[object, ...]], filters: ExecutionFilter) -> str:
    last = page[-1]
    started_us = last[1 + rows.EXECUTION_COLUMNS.index("started_us")]
    return q.encode_cursor(q.Cursor(int(started_us), int(last[0]), q.filter_digest(filters)))  # type: ignore[call-overload]


async def _unique_in_window(
    snap: Snapshot, window: tuple[str | None, int | None, int | None], limit: int
) -> tuple[list[Any], list[Any]]:
    """last_failed(unique_errors) in a window: the page's rows (as q.last_failed_unique gives them)
    and the pattern rows (as q.error_patterns gives them), from one scan of the window's failures
    instead of one for each: the page is each group's latest failure, which is also its pattern's
    example, so both come from the same groups and the same rows."""
    groups = await snap.all(*q.window_groups(*window, PATTERNS_SHOWN, limit + 1))
    on_page = sorted((g for g in groups if g[5] <= limit + 1), key=lambda g: (g[3], g[8]), reverse=True)
    on_page = on_page[: limit + 1]
    by_count = sorted((g for g in groups if g[4] <= PATTERNS_SHOWN), key=lambda g: g[4])
    # A NULL stack_hash counts in the totals but is no pattern: it has no example (as in error_patterns).
    seqs = {g[8] for g in on_page} | {g[8] for g in by_count if g[0] is not None}
    found = await snap.all(*q.executions_by_seq(sorted(seqs))) if seqs else []
    row_of = {r[0]: r[1:] for r in found}
    page_rows = [row_of[g[8]] for g in on_page]
    return page_rows, [_pattern_row(g, row_of.get(g[8]) if g[0] is not None else None) for g in by_count]


_COLUMN = {name: k for k, name in enumerate(rows.EXECUTION_COLUMNS)}
_EXAMPLE_COLUMNS = ("error_type", "error_message", "task_id", "trace_id", "span_id")


def _pattern_row(group: Sequence[Any], example: Sequence[Any] | None) -> tuple[Any, ...]:
    """A window group in error_patterns' row shape: the group, its example's columns, the totals."""
    stack_hash, n, first_us, last_us, _, _, n_total, n_groups, _ = group
    shown = tuple(example[_COLUMN[c]] for c in _EXAMPLE_COLUMNS) if example else (None,) * 5
    return (stack_hash, n, first_us, last_us, *shown, n_total, n_groups)


async def _recent(snap: Snapshot, page: list[Execution]) -> list[list[object]]:
    """The events that led to each failure of the page (the last few of its trace up to its end)."""
    if not page:
        return []
    points = [(e.trace_id, to_us(e.ended_at or e.started_at)) for e in page]
    by_failure: list[list[object]] = [[] for _ in page]
    for row in await snap.all(*q.recent_events(points, RECENT_EVENTS_SHOWN)):
        by_failure[int(row[0])].append(rows.event_from(row[2:]))
    return by_failure


def _pattern(row: tuple[object, ...]) -> ErrorPattern:
    stack_hash, count, first_us, last_us, error_type, message, task_id, trace_id, span_id = row
    return ErrorPattern(
        stack_hash=str(stack_hash), count=int(count), first_seen=from_us(int(first_us)),
        last_seen=from_us(int(last_us)),
        error_type=str(error_type), error_message=str(message), example_task_id=str(task_id),
        example_trace_id=str(trace_id), example_span_id=str(span_id),
    )  # type: ignore[call-overload]  # fmt: skip
