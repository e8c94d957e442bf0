"""SqliteBackend: the store on one SQLite file (WAL). Writes go to the single Writer,
reads to the ReaderPool; both sides speak only in store models."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from store.analysis import trace_outcome
from store.backend import BackendOptions
from store.dbapi import ReadPlan
from store.errors import InvalidInput, NotFound
from store.models import (
    EventRequest,
    EventResult,
    Execution,
    ExecutionDetail,
    ExecutionFilter,
    ExecutionPage,
    FinishRequest,
    FinishResult,
    LastFailed,
    LifecycleEvent,
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
from store.sqlite.last_failed import read_last_failed
from store.sqlite.reader import ReaderPool
from store.sqlite.schema import migrate
from store.sqlite.writer import Writer
from store.timeutil import now_utc, to_us
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
        await self._readers.query("SELECT 1")  # one statement: no BEGIN/COMMIT round trips

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
        ).with_cursor_after(lambda count: _next_cursor(page[:count], filters))  # fmt: skip

    async def trace(self, trace_id: str) -> TraceView:
        return await self._readers.read(_trace(trace_id))

    async def last_failed(
        self,
        limit: int,
        task_id: str | None,
        since: datetime | None,
        until: datetime | None,
        unique_errors: bool,
    ) -> LastFailed:
        plan = read_last_failed((task_id, _us(since), _us(until)), limit, unique_errors)
        view, _ = await self._readers.read(plan)
        return view

    async def get(self, span_id: str) -> ExecutionDetail:
        return await self._readers.read(_detail(span_id))

    async def task_status(self, task_id: str) -> TaskStatus:
        sql = f"SELECT {rows.TASK_SELECT} FROM tasks WHERE task_id = ?"
        found = await self._readers.query(sql, (task_id,))
        if not found:
            raise NotFound(
                "task", f"task_id {task_id}", hint="Call tasks_list to see which task ids have history."
            )
        return rows.task_from(found[0])

    async def timeline(self, task_id: str, limit: int) -> TaskTimeline:
        return await self._readers.read(_timeline(task_id, limit))

    async def event(self, event_id: str) -> LifecycleEvent:
        found = await self._readers.query(
            f"SELECT {rows.EVENT_SELECT} FROM events WHERE event_id = ?", (event_id,)
        )
        if not found:
            raise NotFound(
                "event",
                f"event_id {event_id}",
                hint="tasks_by_trace and tasks_get list events with their ids.",
            )
        return rows.event_from(found[0])


# ---- read plans (store.dbapi.ReadPlan: each runs in one read transaction) ------------------


def _trace(trace_id: str) -> ReadPlan[TraceView]:
    run_rows, event_rows = (yield q.trace_executions(trace_id)), (yield q.trace_events(trace_id))
    executions = [rows.execution_from(r[1:]) for r in run_rows]
    events = [rows.event_from(r[1:]) for r in event_rows]
    retry_count, final_status = trace_outcome(executions)
    return TraceView(
        trace_id=trace_id, found=bool(executions or events), executions=executions, events=events,
        retry_count=retry_count, final_status=final_status,
        execution_seqs=[int(r[0]) for r in run_rows], event_seqs=[int(r[0]) for r in event_rows],
    )  # fmt: skip


def _detail(span_id: str) -> ReadPlan[ExecutionDetail]:
    found = yield q.execution_by_span(span_id)
    if not found:
        raise NotFound(
            "execution", f"span_id {span_id}", hint="Call tasks_list or tasks_last_failed to find a span_id."
        )
    events = [rows.event_from(r) for r in (yield q.span_events(span_id))]
    return ExecutionDetail(execution=rows.execution_from(found[0]), events=events)


def _timeline(task_id: str, limit: int) -> ReadPlan[TaskTimeline]:
    task_rows = yield (f"SELECT {rows.TASK_SELECT} FROM tasks WHERE task_id = ?", (task_id,))
    executions = [rows.execution_from(r) for r in (yield q.task_executions(task_id, limit))]
    events = [rows.event_from(r) for r in (yield q.task_events(task_id, limit))]
    [(executions_total, events_total)] = yield q.task_counts(task_id)
    return TaskTimeline(
        task_id=task_id, task=rows.task_from(task_rows[0]) if task_rows else None,
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
