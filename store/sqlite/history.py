"""Whole-history moves on the storage side: keyset scans for export, raw inserts for import
(events and task rows exactly as exported, without re-applying what an event does), the
prune steps, and the record of which spans went to which OTLP endpoint.

Engine-neutral like store.sqlite.jobs: `?` SQL run in a snapshot or through a `store.dbapi.Tx`,
so `HistoryMixin` serves SqliteBackend and PostgresBackend alike."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from store.dbapi import Tx
from store.errors import Conflict
from store.models import Execution, LifecycleEvent, TaskNote
from store.records import IdKind, ImportOutcome, Page, PruneBatch, PruneCounts, Retention, StoredTask
from store.sqlite import rows
from store.sqlite.jobs import Job
from store.sqlite.rows import EVENT_COLUMNS, EVENT_SELECT, EXECUTION_SELECT, TASK_COLUMNS, TASK_SELECT
from store.timeutil import from_us, to_us
from store.transfer import STORED_EVENT, same_event

Query = tuple[str, list[Any]]
IN_CHUNK = 400  # bound parameters per IN (...) list: far under SQLite's and PostgreSQL's limits
_NEVER = -(2**62)  # a cutoff nothing is older than ("keep forever")

_ID_COLUMNS: dict[IdKind, tuple[str, str]] = {
    "span": ("executions", "span_id"),
    "event": ("events", "event_id"),
    "task": ("tasks", "task_id"),
    "idempotency_key": ("executions", "idempotency_key"),
}


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _chunks(items: Sequence[Any], size: int = IN_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _window(column: str, since: datetime | None, until: datetime | None) -> Query:
    parts, params = [], []
    if since is not None:
        parts.append(f"{column} >= ?")
        params.append(to_us(since))
    if until is not None:
        parts.append(f"{column} < ?")
        params.append(to_us(until))
    return (" AND ".join(parts) or "1=1"), params


# ---- task rows as stored -----------------------------------------------------------------


def stored_task_from(row: Sequence[Any]) -> StoredTask:
    r = dict(zip(TASK_COLUMNS, row, strict=True))
    public = rows.task_from(row)
    return StoredTask(
        **public.model_dump(),
        last_event_at=None if r["last_event_us"] is None else from_us(r["last_event_us"]),
        terminal_event_id=r["terminal_event_id"],
    )


def stored_task_row(t: StoredTask) -> tuple[Any, ...]:
    def us(moment: datetime | None) -> int | None:
        return None if moment is None else to_us(moment)

    notes = rows.dumps([{"us": to_us(n.timestamp), "note": n.note} for n in t.notes])
    return (
        t.task_id, t.state, t.attempts, t.assigned_to, t.current_trace_id, t.current_span_id,
        us(t.started_at), us(t.completed_at), t.result, us(t.last_event_at), t.terminal_event_id, notes,
        to_us(t.updated_at),
    )  # fmt: skip


def notes_of(raw: str) -> list[TaskNote]:
    return [TaskNote(timestamp=from_us(n["us"]), note=n["note"]) for n in json.loads(raw)]


# ---- scans (export) ----------------------------------------------------------------------


def executions_scan(after: int, limit: int, since: datetime | None, until: datetime | None) -> Query:
    where, params = _window("started_us", since, until)
    sql = f"SELECT seq, {EXECUTION_SELECT} FROM executions WHERE seq > ? AND {where} ORDER BY seq LIMIT ?"
    return sql, [after, *params, limit]


def events_scan(after: int, limit: int, since: datetime | None, until: datetime | None) -> Query:
    where, params = _window("ts_us", since, until)
    sql = f"SELECT seq, {EVENT_SELECT} FROM events WHERE seq > ? AND {where} ORDER BY seq LIMIT ?"
    return sql, [after, *params, limit]


def tasks_scan(after: str, limit: int, since: datetime | None, until: datetime | None) -> Query:
    """Task rows in task_id order; with a window, only tasks with an execution or event in it."""
    if since is None and until is None:
        return f"SELECT {TASK_SELECT} FROM tasks WHERE task_id > ? ORDER BY task_id LIMIT ?", [after, limit]
    run_where, run_params = _window("started_us", since, until)
    event_where, event_params = _window("ts_us", since, until)
    sql = (
        f"SELECT {TASK_SELECT} FROM tasks WHERE task_id > ? AND (task_id IN "
        f"(SELECT task_id FROM executions WHERE {run_where}) OR task_id IN "
        f"(SELECT task_id FROM events WHERE {event_where})) ORDER BY task_id LIMIT ?"
    )
    return sql, [after, *run_params, *event_params, limit]


# ---- raw imports -------------------------------------------------------------------------


def import_event_job(event: LifecycleEvent) -> Job[bool]:
    """Insert the event row as given (no effects re-applied); False when this event is already
    stored, a Conflict when a different event holds its event_id (it would be lost without a word)."""
    sql = f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({_marks(len(EVENT_COLUMNS))})"

    def run(tx: Tx) -> bool:
        row = rows.event_row(event)
        if tx.try_insert(sql, row) is None:
            return True
        stored = tx.execute(STORED_EVENT, (event.event_id,)).fetchone()
        if stored is not None and not same_event(stored, dict(zip(EVENT_COLUMNS, row, strict=True))):
            raise Conflict(
                "event_id",
                f"{event.event_id} is already recorded as a {stored[0]} of task {stored[1]} "
                f"at {from_us(int(stored[2])).isoformat()}, not this {event.event_type} of task "
                f"{event.task_id}; the stored event stands and this one was not imported",
                hint="Import into a store without that event, or give the event a new event_id.",
            )
        return False

    return run


def import_task_job(task: StoredTask) -> Job[ImportOutcome]:
    """Store the task row; an existing row is replaced only by a newer one (updated_at)."""
    values = dict(zip(TASK_COLUMNS, stored_task_row(task), strict=True))

    def run(tx: Tx) -> ImportOutcome:
        found = tx.execute("SELECT updated_us FROM tasks WHERE task_id = ?", (task.task_id,)).fetchone()
        if found is None:
            tx.execute(
                f"INSERT INTO tasks ({TASK_SELECT}) VALUES ({_marks(len(TASK_COLUMNS))})",
                list(values.values()),
            )
            return "created"
        if found[0] >= values["updated_us"]:
            return "unchanged"
        names = [c for c in TASK_COLUMNS if c != "task_id"]
        tx.execute(
            f"UPDATE tasks SET {', '.join(f'{c} = ?' for c in names)} WHERE task_id = ?",
            [*(values[c] for c in names), task.task_id],
        )
        return "updated"

    return run


def known_ids_query(kind: IdKind, ids: Sequence[str]) -> Query:
    table, column = _ID_COLUMNS[kind]
    return f"SELECT {column} FROM {table} WHERE {column} IN ({_marks(len(ids))})", list(ids)


# ---- span export tracking (OTLP) ---------------------------------------------------------


def exported_query(destination: str, span_ids: Sequence[str]) -> Query:
    sql = f"SELECT span_id FROM span_exports WHERE destination = ? AND span_id IN ({_marks(len(span_ids))})"
    return sql, [destination, *span_ids]


def mark_exported_job(destination: str, span_ids: Sequence[str], at: datetime) -> Job[int]:
    sql = "INSERT INTO span_exports (destination, span_id, exported_us) VALUES (?, ?, ?)"

    def run(tx: Tx) -> int:
        return sum(tx.try_insert(sql, (destination, span, to_us(at))) is None for span in span_ids)

    return run


# ---- prune -------------------------------------------------------------------------------


def _cutoff(moment: datetime | None) -> int:
    return _NEVER if moment is None else to_us(moment)


def prunable_traces(retention: Retention, after: str, limit: int) -> Query:
    """Traces with nothing running whose every execution ended before its status's cutoff."""
    success, failed = _cutoff(retention.success_before), _cutoff(retention.failed_before)
    sql = (
        "SELECT trace_id FROM executions WHERE trace_id > ? AND trace_id IN "
        "(SELECT trace_id FROM executions WHERE started_us < ?) GROUP BY trace_id "
        "HAVING SUM(CASE WHEN status = 'running' THEN 1 ELSE 0 END) = 0 AND "
        "MAX(COALESCE(ended_us, started_us) - "
        "CASE WHEN status IN ('failed', 'partial') THEN ? ELSE ? END) < 0 "
        "ORDER BY trace_id LIMIT ?"
    )
    return sql, [after, max(success, failed), failed, success, limit]


def trace_members(trace_ids: Sequence[str]) -> tuple[Query, Query]:
    """The executions of these traces, and every event that points at one of them."""
    marks = _marks(len(trace_ids))
    runs = f"SELECT {EXECUTION_SELECT} FROM executions WHERE trace_id IN ({marks}) ORDER BY seq"
    events = (
        f"SELECT {EVENT_SELECT} FROM events WHERE trace_id IN ({marks}) OR span_id IN "
        f"(SELECT span_id FROM executions WHERE trace_id IN ({marks})) ORDER BY seq"
    )
    return (runs, list(trace_ids)), (events, [*trace_ids, *trace_ids])


def old_events(before: datetime, after: int, limit: int) -> Query:
    """Events older than `before` that belong to nothing still running."""
    sql = (
        f"SELECT seq, {EVENT_SELECT} FROM events WHERE seq > ? AND ts_us < ? AND NOT EXISTS "
        "(SELECT 1 FROM executions AS x WHERE x.status = 'running' AND "
        "(x.span_id = events.span_id OR x.trace_id = events.trace_id)) ORDER BY seq LIMIT ?"
    )
    return sql, [after, to_us(before), limit]


def orphan_tasks(before: datetime, after: str, limit: int) -> Query:
    """Task rows with no execution and no event left, untouched since `before`."""
    sql = (
        f"SELECT {TASK_SELECT} FROM tasks WHERE task_id > ? AND updated_us < ? "
        "AND NOT EXISTS (SELECT 1 FROM executions AS x WHERE x.task_id = tasks.task_id) "
        "AND NOT EXISTS (SELECT 1 FROM events AS v WHERE v.task_id = tasks.task_id) ORDER BY task_id LIMIT ?"
    )
    return sql, [after, to_us(before), limit]


def task_counts(task_id: str) -> Query:
    sql = (
        "SELECT (SELECT COUNT(*) FROM executions WHERE task_id = ?), "
        "(SELECT COUNT(*) FROM events WHERE task_id = ?)"
    )
    return sql, [task_id, task_id]


def prune_job(batch: PruneBatch) -> Job[PruneCounts]:
    """Delete what `batch` found, in one transaction, re-checking each part first: a trace that
    gained an execution or event since it was read (or started running again) is left alone."""

    def run(tx: Tx) -> PruneCounts:
        counts = PruneCounts()
        deleted: set[str] = set()  # events already gone with an earlier trace of this batch
        for trace_id in batch.trace_ids:
            _prune_trace(tx, trace_id, batch, counts, deleted)
        if not batch.trace_ids:  # a batch of old events on their own
            counts.events += sum(_delete_loose_event(tx, event) for event in batch.events)
        for task in batch.tasks:
            counts.tasks += _delete_if_orphan(tx, task.task_id)
        return counts

    return run


def _prune_trace(tx: Tx, trace_id: str, batch: PruneBatch, counts: PruneCounts, deleted: set[str]) -> None:
    expected_spans = {e.span_id for e in batch.executions if e.trace_id == trace_id}
    found = tx.execute("SELECT span_id, status FROM executions WHERE trace_id = ?", (trace_id,)).fetchall()
    spans = {row[0] for row in found}
    if spans != expected_spans or any(row[1] == "running" for row in found):
        counts.skipped_traces += 1
        return
    (events_q, events_params) = trace_members([trace_id])[1]
    found_events = {row[0] for row in tx.execute(events_q, events_params).fetchall()}
    expected_events = {e.event_id for e in batch.events if e.trace_id == trace_id or e.span_id in spans}
    if found_events != expected_events - deleted:
        counts.skipped_traces += 1
        return
    for chunk in _chunks(sorted(found_events)):
        tx.execute(f"DELETE FROM events WHERE event_id IN ({_marks(len(chunk))})", list(chunk))
    for chunk in _chunks(sorted(spans)):
        tx.execute(f"DELETE FROM span_exports WHERE span_id IN ({_marks(len(chunk))})", list(chunk))
        tx.execute(f"DELETE FROM executions WHERE span_id IN ({_marks(len(chunk))})", list(chunk))
    counts.executions += len(spans)
    counts.events += len(found_events)
    deleted |= found_events


def _delete_loose_event(tx: Tx, event: LifecycleEvent) -> int:
    running = tx.execute(
        "SELECT 1 FROM executions WHERE status = 'running' AND (span_id = ? OR trace_id = ?)",
        (event.span_id, event.trace_id),
    ).fetchone()
    if running is not None:
        return 0
    before = tx.execute("SELECT 1 FROM events WHERE event_id = ?", (event.event_id,)).fetchone()
    tx.execute("DELETE FROM events WHERE event_id = ?", (event.event_id,))
    return 0 if before is None else 1


def _delete_if_orphan(tx: Tx, task_id: str) -> int:
    runs, events = tx.execute(*task_counts(task_id)).fetchone()
    if runs or events:
        return 0
    found = tx.execute("SELECT 1 FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
    tx.execute("DELETE FROM tasks WHERE task_id = ?", (task_id,))
    return 0 if found is None else 1


# ---- the backend side --------------------------------------------------------------------


class SnapshotScans:
    """Keyset scans of executions, events and task rows, all on one read snapshot (`snap`: a reader
    pool's snapshot, SQLite's read transaction or PostgreSQL's REPEATABLE READ one)."""

    def __init__(self, snap: Any) -> None:
        self._snap = snap

    async def scan_executions(
        self, after: int, limit: int, since: datetime | None, until: datetime | None
    ) -> Page[Execution]:
        found = await self._snap.all(*executions_scan(after, limit, since, until))
        items = [rows.execution_from(row[1:]) for row in found]
        return Page(items, int(found[-1][0]) if len(found) == limit else None)

    async def scan_events(
        self, after: int, limit: int, since: datetime | None, until: datetime | None
    ) -> Page[LifecycleEvent]:
        found = await self._snap.all(*events_scan(after, limit, since, until))
        items = [rows.event_from(row[1:]) for row in found]
        return Page(items, int(found[-1][0]) if len(found) == limit else None)

    async def scan_tasks(
        self, after: str, limit: int, since: datetime | None, until: datetime | None
    ) -> Page[StoredTask]:
        found = await self._snap.all(*tasks_scan(after, limit, since, until))
        items = [stored_task_from(row) for row in found]
        return Page(items, items[-1].task_id if len(found) == limit else None)


class HistoryMixin:
    """The history methods of a backend with a snapshot pool (`_readers`) and a group-committing
    writer (`_writer`): SqliteBackend, and PostgresBackend through it."""

    _readers: Any
    _writer: Any

    async def import_event(self, event: LifecycleEvent) -> bool:
        return await self._writer.submit(import_event_job(event))  # type: ignore[no-any-return]

    async def import_task(self, task: StoredTask) -> ImportOutcome:
        return await self._writer.submit(import_task_job(task))  # type: ignore[no-any-return]

    async def scan_executions(
        self, after: int, limit: int, since: datetime | None, until: datetime | None
    ) -> Page[Execution]:
        async with self.history_snapshot() as scans:
            return await scans.scan_executions(after, limit, since, until)

    async def scan_events(
        self, after: int, limit: int, since: datetime | None, until: datetime | None
    ) -> Page[LifecycleEvent]:
        async with self.history_snapshot() as scans:
            return await scans.scan_events(after, limit, since, until)

    async def scan_tasks(
        self, after: str, limit: int, since: datetime | None, until: datetime | None
    ) -> Page[StoredTask]:
        async with self.history_snapshot() as scans:
            return await scans.scan_tasks(after, limit, since, until)

    @asynccontextmanager
    async def history_snapshot(self) -> AsyncIterator[SnapshotScans]:
        """The three scans in one read transaction, so that a whole export is one point in time."""
        async with self._readers.snapshot() as snap:
            yield SnapshotScans(snap)

    async def known_ids(self, kind: IdKind, ids: Sequence[str]) -> set[str]:
        known: set[str] = set()
        async with self._readers.snapshot() as snap:
            for chunk in _chunks(list(dict.fromkeys(ids))):
                known.update(str(row[0]) for row in await snap.all(*known_ids_query(kind, chunk)))
        return known

    async def exported_spans(self, destination: str, span_ids: Sequence[str]) -> set[str]:
        done: set[str] = set()
        async with self._readers.snapshot() as snap:
            for chunk in _chunks(list(span_ids)):
                done.update(str(row[0]) for row in await snap.all(*exported_query(destination, chunk)))
        return done

    async def mark_exported(self, destination: str, span_ids: Sequence[str], at: datetime) -> int:
        return await self._writer.submit(mark_exported_job(destination, span_ids, at))  # type: ignore[no-any-return]

    async def prune_traces(
        self, retention: Retention, after: str, limit: int
    ) -> tuple[PruneBatch, str | None]:
        """The next `limit` prunable traces with everything that points at them."""
        async with self._readers.snapshot() as snap:
            trace_ids = [str(r[0]) for r in await snap.all(*prunable_traces(retention, after, limit))]
            batch = PruneBatch(trace_ids=trace_ids)
            if trace_ids:
                runs_q, events_q = trace_members(trace_ids)
                batch.executions = [rows.execution_from(r) for r in await snap.all(*runs_q)]
                batch.events = [rows.event_from(r) for r in await snap.all(*events_q)]
                batch.tasks = await _emptied_tasks(snap, batch)
        return batch, (trace_ids[-1] if len(trace_ids) == limit else None)

    async def prune_events(self, before: datetime, after: int, limit: int) -> tuple[PruneBatch, int | None]:
        async with self._readers.snapshot() as snap:
            found = await snap.all(*old_events(before, after, limit))
            batch = PruneBatch(events=[rows.event_from(r[1:]) for r in found])
            batch.tasks = await _emptied_tasks(snap, batch)
        return batch, (int(found[-1][0]) if len(found) == limit else None)

    async def prune_orphan_tasks(
        self, before: datetime, after: str, limit: int
    ) -> tuple[PruneBatch, str | None]:
        async with self._readers.snapshot() as snap:
            tasks = [stored_task_from(r) for r in await snap.all(*orphan_tasks(before, after, limit))]
        return PruneBatch(tasks=tasks), (tasks[-1].task_id if len(tasks) == limit else None)

    async def prune(self, batch: PruneBatch) -> PruneCounts:
        return await self._writer.submit(prune_job(batch))  # type: ignore[no-any-return]


async def _emptied_tasks(snap: Any, batch: PruneBatch) -> list[StoredTask]:
    """Task rows that the batch would leave with no execution and no event."""
    per_task: dict[str, list[int]] = {}
    for e in batch.executions:
        per_task.setdefault(e.task_id, [0, 0])[0] += 1
    for v in batch.events:
        per_task.setdefault(v.task_id, [0, 0])[1] += 1
    emptied: list[StoredTask] = []
    for task_id, (runs, events) in sorted(per_task.items()):
        if tuple(await snap.one(*task_counts(task_id))) == (runs, events):
            row = await snap.one(f"SELECT {TASK_SELECT} FROM tasks WHERE task_id = ?", (task_id,))
            if row is not None:
                emptied.append(stored_task_from(row))
    return emptied
