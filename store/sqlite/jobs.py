"""Write jobs: synchronous functions of one transaction (`store.dbapi.Tx`), run by the single writer
inside a savepoint of its group-commit transaction. A job either completes or leaves
nothing behind. Uniqueness (span_id, idempotency_key, event_id, retry_of) is enforced by
the database: an IntegrityError turns into "duplicate" or a Conflict, never a second row."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from store import rules
from store.dbapi import Tx, UniqueViolation
from store.errors import Conflict, InvalidInput, NotFound
from store.ids import recorded_idempotency_key
from store.models import (
    Execution,
    FinishRequest,
    FinishResult,
    RecordRequest,
    StartRequest,
    StartResult,
)
from store.sqlite import rows
from store.sqlite.derived import index_execution
from store.sqlite.rows import EXECUTION_COLUMNS, EXECUTION_SELECT, TASK_SELECT
from store.timeutil import to_us

T = TypeVar("T")
Job = Callable[[Tx], T]

_INSERT_EXECUTION = (
    f"INSERT INTO executions ({', '.join(EXECUTION_COLUMNS)}) VALUES "
    f"({', '.join('?' * len(EXECUTION_COLUMNS))})"
)
# The guard makes the update check what the job believes: a row that is not running any more
# (finished by another process since it was cached, see RunningCache) updates nothing and
# returns no seq, and the job answers from a real read instead.
_UPDATE_OUTCOME = (
    f"UPDATE executions SET {', '.join(f'{c} = ?' for c in rows.OUTCOME_COLUMNS)} "
    "WHERE span_id = ? AND status = 'running' RETURNING seq"
)


@dataclass(frozen=True)
class WriteContext:
    policy: rules.Policy
    now: datetime


# ---- the writer's running executions ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Running:
    """A running execution as this writer inserted it, and its detail column's text."""

    execution: Execution
    detail: str


class RunningCache:
    """The executions this writer inserted as running and has not finished, by span_id, so that
    finishing one (the common case: tasks_start, then tasks_finish from the same server) need not
    read the row back and rebuild its model.

    Only ever a hint, never the truth: the finish's UPDATE is guarded by `status = 'running'`,
    and when it matches no row (another process finished or deleted the execution) the job
    answers from a real read, exactly as without the cache. Nothing but finishing changes a
    running execution, so an entry whose row is still running is that row. The writer keeps the
    entries in step with its transactions: an entry added by a job that fails goes with the job's
    savepoint (`job_failed`), all go when a transaction fails to commit or another connection
    committed since the last one (`clear`)."""

    def __init__(self, limit: int = 4096) -> None:
        self._limit = limit
        self._entries: dict[str, Running] = {}
        self._added: list[str] = []  # by the job now running

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, span_id: str, entry: Running) -> None:
        if self._limit <= 0:
            return
        if len(self._entries) >= self._limit:  # long-running executions: forget the oldest
            del self._entries[next(iter(self._entries))]
        self._entries[span_id] = entry
        self._added.append(span_id)

    def take(self, span_id: str) -> Running | None:
        return self._entries.pop(span_id, None)

    def job_done(self) -> None:
        self._added.clear()

    def job_failed(self) -> None:
        """The job's savepoint was rolled back: forget what it inserted."""
        for span_id in self._added:
            self._entries.pop(span_id, None)
        self._added.clear()

    def clear(self) -> None:
        self._entries.clear()
        self._added.clear()


_NO_CACHE = RunningCache(limit=0)


def running_of(conn: Tx) -> RunningCache:
    """The cache the writer's transaction carries, or one that keeps nothing (a Tx without one)."""
    cache = getattr(conn, "running", None)
    return cache if isinstance(cache, RunningCache) else _NO_CACHE


# ---- lookups ---------------------------------------------------------------------------


def fetch_execution(conn: Tx, span_id: str) -> Execution | None:
    row = conn.execute(f"SELECT {EXECUTION_SELECT} FROM executions WHERE span_id = ?", (span_id,)).fetchone()
    return rows.execution_from(row) if row else None


def fetch_by_key(conn: Tx, key: str) -> Execution | None:
    row = conn.execute(
        f"SELECT {EXECUTION_SELECT} FROM executions WHERE idempotency_key = ?", (key,)
    ).fetchone()
    return rows.execution_from(row) if row else None


def _require_relative(conn: Tx, field: str, span_id: str | None) -> Execution | None:
    if span_id is None:
        return None
    found = fetch_execution(conn, span_id.strip().lower())
    if found is None:
        raise InvalidInput(
            field,
            f"no execution with span_id {span_id}",
            hint="Pass the span_id returned by tasks_start for that execution (tasks_list shows "
            "them), or omit it.",
        )
    return found


# ---- start / finish / record -----------------------------------------------------------


def start_job(req: StartRequest, ctx: WriteContext) -> Job[StartResult]:
    def run(conn: Tx) -> StartResult:
        if req.idempotency_key is not None and (existing := fetch_by_key(conn, req.idempotency_key)):
            return StartResult(execution=_keyed_twin(existing, req.task_id), duplicate=True)
        lineage = rules.Lineage(
            retried=_require_relative(conn, "retry_of", req.retry_of),
            parent=_require_relative(conn, "parent_span_id", req.parent_span_id),
        )
        execution = rules.new_execution(
            _on_the_tasks_trace(conn, _normalized(req)), ctx.policy, lineage, ctx.now
        )
        result = insert_execution(conn, execution)
        if not result.duplicate and execution.parent_span_id is None:
            _task_started(conn, execution, ctx.now)
        return result

    return run


def _on_the_tasks_trace(conn: Tx, req: StartRequest) -> StartRequest:
    """A task's first run joins the trace its earlier events opened (task_created, task_assigned), as
    a task_started event would, so tasks_by_trace shows the whole lifecycle from either path."""
    if req.trace_id is not None or req.retry_of is not None or req.parent_span_id is not None:
        return req
    task = fetch_task(conn, req.task_id)
    if task is None or not task["current_trace_id"] or latest_top_level(conn, req.task_id) is not None:
        return req
    return req.model_copy(update={"trace_id": task["current_trace_id"]})


def latest_top_level(conn: Tx, task_id: str) -> Execution | None:
    """The task's most recent execution that is not a child (a worker's)."""
    row = conn.execute(
        f"SELECT {EXECUTION_SELECT} FROM executions WHERE task_id = ? AND parent_span_id IS NULL "
        "ORDER BY started_us DESC, seq DESC LIMIT 1",
        (task_id,),
    ).fetchone()
    return rows.execution_from(row) if row else None


def _normalized(req: StartRequest) -> StartRequest:
    """Span references are stored lower-case (they are UUIDs); compare them the same way."""
    update = {
        name: getattr(req, name).strip().lower()
        for name in ("retry_of", "parent_span_id")
        if getattr(req, name) is not None
    }
    return req.model_copy(update=update) if update else req


def insert_execution(conn: Tx, execution: Execution) -> StartResult:
    """Insert, or return the stored twin when the database says this execution exists."""
    detail = rows.detail_text(execution)
    collision = conn.try_insert(_INSERT_EXECUTION, rows.execution_row(execution, detail))
    if collision is not None:
        return StartResult(execution=_twin_of(conn, execution, collision), duplicate=True)
    index_execution(conn, execution)  # failures and side_effects (store.sqlite.derived)
    if execution.status == "running":
        running_of(conn).put(execution.span_id, Running(execution, detail))
    return StartResult(execution=execution, duplicate=False)


def _twin_of(conn: Tx, execution: Execution, exc: UniqueViolation) -> Execution:
    """The stored execution this insert repeats; a Conflict when it collides with a different one."""
    if execution.idempotency_key and (twin := fetch_by_key(conn, execution.idempotency_key)):
        return _keyed_twin(twin, execution.task_id)
    if twin := fetch_execution(conn, execution.span_id):
        if twin.task_id == execution.task_id:
            return twin
        raise Conflict(
            "span_id", f"{execution.span_id} already belongs to an execution of task {twin.task_id}"
        )
    if "retry_of" in str(exc):
        retry = conn.execute(
            "SELECT span_id FROM executions WHERE retry_of = ?", (execution.retry_of,)
        ).fetchone()
        raise Conflict(
            "retry_of",
            f"execution {execution.retry_of} was already retried by "
            f"{retry[0] if retry else 'another execution'}",
            hint="Retry the latest attempt of the trace instead (tasks_by_trace lists them).",
        )
    raise InvalidInput("execution", f"breaks a rule of the store ({exc})") from exc


def _keyed_twin(twin: Execution, task_id: str) -> Execution:
    """The execution a repeated idempotency key names, when it is one of the same task: a key names
    one run of one task, so another task's execution is a conflict, never its duplicate."""
    if twin.task_id != task_id:
        raise Conflict(
            "idempotency_key",
            f"{twin.idempotency_key!r} already names execution {twin.span_id} of task {twin.task_id}, "
            f"not of {task_id}",
            hint="Use a key of this task's own (for example prefixed with its task_id), or omit it.",
        )
    return twin


def finish_job(req: FinishRequest, ctx: WriteContext) -> Job[FinishResult]:
    def run(conn: Tx) -> FinishResult:
        span_id = req.span_id.strip().lower()
        finish = req if span_id == req.span_id else req.model_copy(update={"span_id": span_id})
        cached = running_of(conn).take(span_id)
        if cached is not None:
            try:
                done = rules.finished(cached.execution, finish, ctx.policy, ctx.now)
            except InvalidInput:
                pass  # checked against a copy that may be out of date: the real read below decides
            else:
                return _store_outcome(conn, cached.execution, done, finish, ctx, cached.detail)
        current = fetch_execution(conn, span_id)
        if current is None:
            raise _no_execution(req.span_id)
        return finish_execution(conn, current, finish, ctx)

    return run


def _no_execution(span_id: str) -> NotFound:
    return NotFound(
        "execution",
        f"span_id {span_id}",
        hint="Use the span_id returned by tasks_start (tasks_list shows running executions).",
    )


def finish_execution(conn: Tx, current: Execution, req: FinishRequest, ctx: WriteContext) -> FinishResult:
    if current.status != "running":
        return _finished_already(current, req)
    done = rules.finished(current, req, ctx.policy, ctx.now)
    return _store_outcome(conn, current, done, req, ctx, None)


def _store_outcome(
    conn: Tx, current: Execution, done: Execution, req: FinishRequest, ctx: WriteContext, detail: str | None
) -> FinishResult:
    """Write `done` (`current` finished) over the running row; `detail` is current's detail text."""
    if detail is None or done.io is not current.io:
        detail = rows.detail_text(done)
    row = conn.execute(_UPDATE_OUTCOME, (*rows.outcome_row(done, detail), done.span_id)).fetchone()
    if row is None:
        # The row is not running any more: `current` was a cached copy and another process has
        # finished (or removed) the execution since. Answer from what the database holds.
        stored = fetch_execution(conn, done.span_id)
        if stored is None:
            raise _no_execution(req.span_id)
        return finish_execution(conn, stored, req, ctx)
    index_execution(conn, done, seq=row[0])
    if done.parent_span_id is None:
        _task_finished(conn, done, ctx.now)
    return FinishResult(execution=done, already_finished=False)


def _finished_already(current: Execution, req: FinishRequest) -> FinishResult:
    if rules.same_outcome(current, req):
        return FinishResult(execution=current, already_finished=True)
    ended = current.ended_at.isoformat() if current.ended_at else "earlier"
    raise Conflict(
        "status",
        f"execution {current.span_id} already finished as {current.status} at {ended}; the first "
        "outcome stands",
        hint="To run it again, start a new attempt with retry_of set to this span_id.",
    )


def record_job(req: RecordRequest, ctx: WriteContext) -> Job[StartResult]:
    start_fields = set(StartRequest.model_fields)
    start = StartRequest(**{k: v for k, v in req if k in start_fields})
    if start.idempotency_key is None and start.scheduled_at is None:
        key = recorded_idempotency_key(req.task_id, req.started_at, req.retry_of)
        start = start.model_copy(update={"idempotency_key": key})
    start_run = start_job(start, ctx)

    def run(conn: Tx) -> StartResult:
        started = start_run(conn)
        finish = FinishRequest(
            span_id=started.execution.span_id, status=req.status, error=req.error, result=req.result,
            io=req.io, usage=req.usage, ended_at=req.ended_at,
        )  # fmt: skip
        # A repeated start still runs the finish rules: a running twin (tasks_start with the same
        # key) is finished now, a finished one is a no-op for the same outcome and a Conflict otherwise.
        done = finish_execution(conn, started.execution, finish, ctx)
        return StartResult(execution=done.execution, duplicate=started.duplicate and done.already_finished)

    return run


def import_job(execution: Execution) -> Job[StartResult]:
    def run(conn: Tx) -> StartResult:
        rules.check_invariants(execution)
        return insert_execution(conn, execution)

    return run


# ---- task state from start/finish ------------------------------------------------------


def fetch_task(conn: Tx, task_id: str) -> dict[str, Any] | None:
    row = conn.execute(f"SELECT {TASK_SELECT} FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
    return dict(zip(rows.TASK_COLUMNS, row, strict=True)) if row else None


def upsert_task(conn: Tx, task: dict[str, Any]) -> None:
    names = rows.TASK_COLUMNS
    updates = ", ".join(f"{n} = excluded.{n}" for n in names if n != "task_id")
    conn.execute(
        f"INSERT INTO tasks ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) "
        f"ON CONFLICT (task_id) DO UPDATE SET {updates}",
        tuple(task[n] for n in names),
    )


def new_task(task_id: str, now: datetime) -> dict[str, Any]:
    return {
        "task_id": task_id, "state": "pending", "attempts": 0, "assigned_to": None, "current_trace_id": None,
        "current_span_id": None, "started_us": None, "completed_us": None, "result": None,
        "last_event_us": None,
        "terminal_event_id": None, "notes": "[]", "updated_us": to_us(now),
    }  # fmt: skip


# One statement each, instead of reading the task row into Python and writing all of it back.
# NULLIF: a stored started_us of 0 counts as unset, as `task["started_us"] or ...` did.
_TASK_STARTED = (
    "INSERT INTO tasks (task_id, state, attempts, current_trace_id, current_span_id, started_us, updated_us) "
    "VALUES (?, 'in_progress', 1, ?, ?, ?, ?) ON CONFLICT (task_id) DO UPDATE SET state = 'in_progress', "
    "attempts = tasks.attempts + 1, current_trace_id = excluded.current_trace_id, "
    "current_span_id = excluded.current_span_id, "
    "started_us = COALESCE(NULLIF(tasks.started_us, 0), excluded.started_us), completed_us = NULL, "
    "updated_us = excluded.updated_us"
)
# Only while this execution still owns the task's state: a newer attempt may have taken it.
_TASK_FINISHED = (
    "UPDATE tasks SET state = ?, completed_us = ?, result = ?, updated_us = ? "
    "WHERE task_id = ? AND current_span_id = ?"
)


def _task_started(conn: Tx, e: Execution, now: datetime) -> None:
    now_us = to_us(now)
    conn.execute(_TASK_STARTED, (e.task_id, e.trace_id, e.span_id, to_us(e.started_at), now_us))


TASK_STATE_OF_STATUS = {
    "success": "completed",
    "partial": "completed",
    "failed": "failed",
    "cancelled": "cancelled",
}


def _task_finished(conn: Tx, e: Execution, now: datetime) -> None:
    result = e.result if e.result is not None else (e.error.message if e.error else None)
    completed_us = to_us(e.ended_at) if e.ended_at else None
    conn.execute(
        _TASK_FINISHED,
        (TASK_STATE_OF_STATUS[e.status], completed_us, result, to_us(now), e.task_id, e.span_id),
    )
