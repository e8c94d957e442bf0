"""The event job: append a lifecycle event and apply what it does to the task's state and
executions (store.lifecycle decides; this module does the reads and writes). Nothing
well-formed is refused: surprises are kept and flagged with an anomaly sentence."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from store import lifecycle, rules
from store.dbapi import Tx
from store.errors import Conflict
from store.ids import new_uuid4
from store.lifecycle import Effect
from store.models import (
    EventRequest,
    EventResult,
    Execution,
    FinishRequest,
    LifecycleEvent,
    StartRequest,
)
from store.rules import scrub_data
from store.sqlite import rows
from store.sqlite.jobs import (
    Job,
    WriteContext,
    fetch_execution,
    fetch_task,
    finish_execution,
    insert_execution,
    latest_top_level,
    new_task,
    upsert_task,
)
from store.sqlite.rows import EVENT_SELECT, EXECUTION_SELECT
from store.timeutil import from_us, to_us


@dataclass
class _Applied:
    """What applying one event did, gathered as it goes."""

    trace_id: str | None = None
    span_id: str | None = None
    opened: str | None = None
    closed: str | None = None
    closed_at: datetime | None = None
    outcome: bool = False  # the event set the task's terminal state (it becomes terminal_event_id)
    anomalies: list[str] = field(default_factory=list)


def event_job(req: EventRequest, ctx: WriteContext) -> Job[EventResult]:
    def run(conn: Tx) -> EventResult:
        if req.event_id is not None and (dup := _fetch_event(conn, req.event_id)):
            _require_same_event(dup, req, ctx)
            return EventResult(event=dup, task=_task_status(conn, req.task_id, ctx), duplicate=True)
        return _append(conn, req, ctx)

    return run


def _require_same_event(stored: LifecycleEvent, req: EventRequest, ctx: WriteContext) -> None:
    """A repeated event_id is a no-op only when it repeats the event; otherwise the new event
    would be silently dropped, so it is a conflict and the stored event stands."""
    differs = [
        name
        for name, same in (
            ("event_type", stored.event_type == req.event_type),
            ("task_id", stored.task_id == req.task_id),
            ("ts", req.ts is None or to_us(req.ts) == to_us(stored.ts)),
            ("data", json.loads(rows.dumps(scrub_data(ctx.policy, req.data))) == stored.data),
        )
        if not same
    ]
    if differs:
        raise Conflict(
            "event_id",
            f"{stored.event_id} is already recorded as a {stored.event_type} of task {stored.task_id} "
            f"with a different {', '.join(differs)}; the stored event stands",
            hint="Give a different event a new event_id (or omit it); resend an event unchanged to repeat "
            "it safely.",
        )


def _append(conn: Tx, req: EventRequest, ctx: WriteContext) -> EventResult:
    rules.check_not_future("ts", req.ts, ctx.now)
    ts = req.ts or ctx.now
    task = fetch_task(conn, req.task_id) or new_task(req.task_id, ctx.now)
    if task["current_trace_id"] is None:
        # A task's first event opens its trace, so the events before its first execution
        # (created, assigned) belong to the same trace as the execution that follows.
        task["current_trace_id"] = _lower(req.trace_id) or new_uuid4()
    applied = _Applied(trace_id=_lower(req.trace_id) or task["current_trace_id"], span_id=_lower(req.span_id))
    late = task["last_event_us"] is not None and to_us(ts) < task["last_event_us"]
    if late:
        applied.anomalies.append(f"arrived out of order: {ts.isoformat()} is before the task's latest event")
    was_running = _running_task_execution(conn, task, None) is not None
    _apply_effect(conn, req, ts, task, applied, ctx, late=late)
    if late:
        _follow_late(req, ts, task, applied)
    else:
        _advance_state(req, ts, task, applied, was_running=was_running)
    event = _insert_event(conn, req, ts, applied, ctx)
    _remember(task, req, event, applied, late=late, now_us=to_us(ctx.now))
    upsert_task(conn, task)
    return EventResult(
        event=event, task=rows.task_from(tuple(task[n] for n in rows.TASK_COLUMNS)),
        opened_span_id=applied.opened, closed_span_id=applied.closed,
    )  # fmt: skip


# ---- executions --------------------------------------------------------------------------


def _apply_effect(
    conn: Tx, req: EventRequest, ts: Any, task: dict[str, Any], applied: _Applied,
    ctx: WriteContext, *, late: bool,
) -> None:  # fmt: skip
    effect = lifecycle.effect_of(req.event_type)
    running = _running_task_execution(conn, task, applied.span_id)
    if effect is Effect.OPEN_TASK:
        _open_task(conn, req, ts, task, running, applied, ctx, late=late)
    elif effect is Effect.CLOSE_TASK:
        _close(conn, req, ts, running, applied, ctx, what="task")
    elif effect in (Effect.OPEN_WORKER, Effect.CLOSE_WORKER, Effect.TOUCH_WORKER):
        _worker_effect(conn, req, ts, effect, running, applied, ctx, late=late)
    elif running is not None:
        _point_at(applied, running)


def _running_task_execution(conn: Tx, task: dict[str, Any], span_id: str | None) -> Execution | None:
    for candidate in (span_id, task["current_span_id"]):
        if candidate:
            found = fetch_execution(conn, candidate)
            if found is not None and found.status == "running" and found.parent_span_id is None:
                return found
    return None


def _open_task(
    conn: Tx, req: EventRequest, ts: Any, task: dict[str, Any], running: Execution | None,
    applied: _Applied, ctx: WriteContext, *, late: bool,
) -> None:  # fmt: skip
    if running is not None:
        _point_at(applied, running)
        return  # lifecycle.next_state flags the anomaly
    ended = _task_run_ending_after(conn, req.task_id, ts) if late else None
    if ended is not None and task["state"] in lifecycle.TERMINAL_STATES:
        # The outcome that would close it has closed that run already: a second run from this
        # start would reuse it and stretch from this (earlier) time to that outcome.
        _point_at(applied, ended)
        applied.anomalies.append(f"the run it would open had already ended ({ended.span_id}); no run opened")
        return
    previous = latest_top_level(conn, req.task_id)
    retried = previous if previous is not None and previous.status == "failed" and not late else None
    start = StartRequest(
        task_id=req.task_id, task_name=_text(req.data, "task_name"), task_type=_text(req.data, "task_type"),
        actor=req.actor, span_id=applied.span_id, trace_id=_trace_for_new_run(req, task, previous, retried),
        retry_of=retried.span_id if retried else None, started_at=ts,
    )  # fmt: skip
    execution = rules.new_execution(start, ctx.policy, rules.Lineage(retried=retried), ctx.now)
    stored = insert_execution(conn, execution.model_copy(update={"backfilled": req.backfilled})).execution
    _point_at(applied, stored)
    applied.opened = stored.span_id
    task.update(current_trace_id=stored.trace_id, current_span_id=stored.span_id)
    if late and task["state"] in lifecycle.TERMINAL_STATES:
        _close_from_terminal_event(conn, task, stored, applied, ctx)


def _trace_for_new_run(
    req: EventRequest, task: dict[str, Any], previous: Execution | None, retried: Execution | None
) -> str | None:
    """The trace a new top-level run joins; None means a fresh one."""
    if retried is not None:
        return None  # the retry takes its first attempt's trace
    if req.trace_id:
        return _lower(req.trace_id)
    return task["current_trace_id"] if previous is None else None


def _close_from_terminal_event(
    conn: Tx, task: dict[str, Any], opened: Execution, applied: _Applied, ctx: WriteContext
) -> None:
    """A task_started that arrives after its outcome: close the execution with that outcome."""
    terminal = _fetch_event(conn, task["terminal_event_id"]) if task["terminal_event_id"] else None
    if terminal is None:
        return
    _close(conn, _as_request(terminal), terminal.ts, opened, applied, ctx, what="task")
    applied.anomalies.append(f"closed with the outcome of the earlier-arrived {terminal.event_type}")


def _worker_effect(
    conn: Tx, req: EventRequest, ts: Any, effect: Effect, parent: Execution | None,
    applied: _Applied, ctx: WriteContext, *, late: bool,
) -> None:  # fmt: skip
    worker_id = str(req.data["worker_id"])
    current = _running_worker(conn, req.task_id, worker_id)
    if effect is Effect.OPEN_WORKER and current is None:
        ended = _worker_run_ending_after(conn, req.task_id, worker_id, ts) if late else None
        if ended is not None:
            _point_at(applied, ended)  # a late spawn/start of a run that already ended: open nothing
            return
        opened = _open_worker(conn, req, ts, worker_id, parent, applied, ctx)
        if late:
            _close_from_worker_outcome(conn, req.task_id, worker_id, opened, applied, ctx)
    elif effect is Effect.CLOSE_WORKER:
        _close(conn, req, ts, current, applied, ctx, what=f"worker {worker_id}")
    elif current is not None:
        _point_at(applied, current)
    else:
        applied.anomalies.append(f"no running execution for worker {worker_id}")


def _open_worker(
    conn: Tx, req: EventRequest, ts: Any, worker_id: str, parent: Execution | None,
    applied: _Applied, ctx: WriteContext,
) -> Execution:  # fmt: skip
    if parent is None:
        applied.anomalies.append(f"worker {worker_id} started while no execution of the task was running")
    start = StartRequest(
        task_id=req.task_id, task_type=_text(req.data, "worker_type") or "worker", actor=worker_id,
        parent_span_id=parent.span_id if parent else None, trace_id=None if parent else applied.trace_id,
        started_at=ts, task_name=_text(req.data, "task_name"),
    )  # fmt: skip
    execution = rules.new_execution(start, ctx.policy, rules.Lineage(parent=parent), ctx.now)
    stored = insert_execution(
        conn, execution.model_copy(update={"worker_id": worker_id, "backfilled": req.backfilled})
    ).execution
    _point_at(applied, stored)
    applied.opened = stored.span_id
    return stored


def _task_run_ending_after(conn: Tx, task_id: str, ts: Any) -> Execution | None:
    """The task's latest finished top-level run, when it ended after `ts` (a late task_started):
    newest first through ix_exec_task, so a task with many runs costs one step, not a scan."""
    row = conn.execute(
        f"SELECT {EXECUTION_SELECT} FROM executions WHERE task_id = ? AND parent_span_id IS NULL "
        "AND status <> 'running' ORDER BY started_us DESC, seq DESC LIMIT 1",
        (task_id,),
    ).fetchone()
    found = rows.execution_from(row) if row else None
    return found if found is not None and found.ended_at is not None and found.ended_at >= ts else None


def _worker_run_ending_after(conn: Tx, task_id: str, worker_id: str, ts: Any) -> Execution | None:
    """The worker's finished run that this (late) open event belongs to: one that ended after it."""
    row = conn.execute(
        f"SELECT {EXECUTION_SELECT} FROM executions "
        "WHERE task_id = ? AND worker_id = ? AND status <> 'running' AND ended_us >= ? "
        "ORDER BY started_us, seq LIMIT 1",
        (task_id, worker_id, to_us(ts)),
    ).fetchone()
    return rows.execution_from(row) if row else None


def _close_from_worker_outcome(
    conn: Tx, task_id: str, worker_id: str, opened: Execution, applied: _Applied, ctx: WriteContext
) -> None:
    """A worker_started that arrives after its outcome: close the execution with that outcome.
    An outcome at or after this start closed nothing when it arrived (a run it closed would have
    ended after this start, and _worker_run_ending_after would have found it)."""
    found = conn.execute(
        f"SELECT {EVENT_SELECT} FROM events WHERE task_id = ? AND ts_us >= ? "
        "AND event_type IN ('worker_completed', 'worker_failed') ORDER BY ts_us, seq",
        (task_id, to_us(opened.started_at)),
    ).fetchall()
    for row in found:
        outcome = rows.event_from(row)
        if str(outcome.data.get("worker_id")) == worker_id:
            _close(conn, _as_request(outcome), outcome.ts, opened, applied, ctx, what=f"worker {worker_id}")
            applied.anomalies.append(f"closed with the outcome of the earlier-arrived {outcome.event_type}")
            return


def _close(
    conn: Tx, req: EventRequest, ts: Any, execution: Execution | None, applied: _Applied,
    ctx: WriteContext, *, what: str,
) -> None:  # fmt: skip
    if execution is None:
        applied.anomalies.append(f"{req.event_type} with no running execution of the {what} to close")
        return
    status = lifecycle.close_status(req.event_type, req.data)
    error = None
    if status == "failed":
        error, anomaly = lifecycle.error_from_event(req.event_type, req.data)
        if anomaly:
            applied.anomalies.append(anomaly)
    ended = max(ts, execution.started_at)
    if ended != ts:
        applied.anomalies.append(
            "its timestamp is before the execution started; the end was set to the start"
        )
    finish = FinishRequest(
        span_id=execution.span_id, status=status, error=error, result=_result_text(req.data), ended_at=ended
    )
    done = finish_execution(conn, execution, finish, ctx).execution
    _point_at(applied, done)
    applied.closed = done.span_id
    applied.closed_at = done.ended_at


def _running_worker(conn: Tx, task_id: str, worker_id: str) -> Execution | None:
    row = conn.execute(
        f"SELECT {EXECUTION_SELECT} FROM executions "
        "WHERE task_id = ? AND worker_id = ? AND status = 'running' "
        "ORDER BY started_us DESC, seq DESC LIMIT 1",  # seq: of two started together, the later written
        (task_id, worker_id),
    ).fetchone()
    return rows.execution_from(row) if row else None


def _point_at(applied: _Applied, execution: Execution) -> None:
    applied.trace_id = execution.trace_id
    applied.span_id = execution.span_id


# ---- task state ------------------------------------------------------------------------


def _advance_state(
    req: EventRequest, ts: Any, task: dict[str, Any], applied: _Applied, *, was_running: bool
) -> None:
    if lifecycle.is_custom_type(req.event_type):
        return
    still_running = was_running and applied.closed is None
    kept_outcome = lifecycle.keeps_outcome(task["state"], req.event_type)
    change = lifecycle.next_state(task["state"], req.event_type, has_running=still_running)
    if change.anomaly:
        applied.anomalies.append(change.anomaly)
    task["state"] = change.state
    assignee = lifecycle.assignee_from(req.event_type, req.data, req.actor)
    if assignee:
        task["assigned_to"] = assignee
    if req.event_type == "task_started" and not (was_running and applied.opened is None):
        # A task_started while the task's execution runs opened nothing: no new attempt (anomaly kept).
        task["attempts"] += 1
        task["started_us"] = task["started_us"] or to_us(ts)
        task["completed_us"] = None
    if change.state in lifecycle.TERMINAL_STATES and req.event_type.startswith("task_") and not kept_outcome:
        task["completed_us"] = to_us(ts)
        task["result"] = _result_text(req.data) or task["result"]
        applied.outcome = lifecycle.effect_of(req.event_type) is Effect.CLOSE_TASK


_CONTRADICTS_RUNNING = frozenset({"pending", "assigned", *lifecycle.TERMINAL_STATES})


def _follow_late(req: EventRequest, ts: Any, task: dict[str, Any], applied: _Applied) -> None:
    """An out-of-order event moves the state only as far as it moved the task's executions: a
    start it opened, an outcome it closed. A pure state event (blocked, assigned, ...) older than
    the task's latest one would move the state backwards, so it only stays in the timeline."""
    effect = lifecycle.effect_of(req.event_type)
    closed_current = applied.closed is not None and applied.closed == task["current_span_id"]
    if effect is Effect.OPEN_TASK and applied.opened is not None:
        task["attempts"] += 1
        task["started_us"] = min(task["started_us"] or to_us(ts), to_us(ts))
        if applied.closed is None and task["state"] in _CONTRADICTS_RUNNING:
            task.update(state="in_progress", completed_us=None)  # its execution is running
    elif effect is Effect.CLOSE_TASK and closed_current:
        task["state"] = lifecycle.next_state(task["state"], req.event_type, has_running=False).state
        task["completed_us"] = to_us(applied.closed_at or ts)
        task["result"] = _result_text(req.data) or task["result"]
        applied.outcome = True


def _remember(
    task: dict[str, Any], req: EventRequest, event: LifecycleEvent, applied: _Applied, *, late: bool,
    now_us: int,
) -> None:  # fmt: skip
    if not late:
        task["last_event_us"] = to_us(event.ts)
    if applied.outcome:
        task["terminal_event_id"] = event.event_id
    note = lifecycle.note_from(event.data)
    if note:
        notes = [*json.loads(task["notes"]), {"us": to_us(event.ts), "note": note}]
        task["notes"] = rows.dumps(notes[-lifecycle.MAX_NOTES :])
    task["updated_us"] = now_us


def _task_status(conn: Tx, task_id: str, ctx: WriteContext) -> Any:
    task = fetch_task(conn, task_id) or new_task(task_id, ctx.now)
    return rows.task_from(tuple(task[n] for n in rows.TASK_COLUMNS))


# ---- the event row ---------------------------------------------------------------------


def _insert_event(
    conn: Tx, req: EventRequest, ts: Any, applied: _Applied, ctx: WriteContext
) -> LifecycleEvent:
    event = LifecycleEvent(
        event_id=req.event_id or new_uuid4(), event_type=req.event_type, task_id=req.task_id,
        trace_id=applied.trace_id, span_id=applied.span_id, actor=req.actor, ts=ts,
        data=scrub_data(ctx.policy, req.data), anomaly="; ".join(applied.anomalies) or None,
        recorded_at=ctx.now,
    )  # fmt: skip
    collision = conn.try_insert(
        f"INSERT INTO events ({', '.join(rows.EVENT_COLUMNS)}) VALUES "
        f"({', '.join('?' * len(rows.EVENT_COLUMNS))})",
        rows.event_row(event),
    )
    if collision is not None:
        # Another process stored the same event_id between our check and this insert.
        raise Conflict(
            "event_id",
            f"{event.event_id} was stored concurrently",
            hint="Retry the call: it will be a duplicate.",
        )
    return event


def _fetch_event(conn: Tx, event_id: str) -> LifecycleEvent | None:
    row = conn.execute(f"SELECT {EVENT_SELECT} FROM events WHERE event_id = ?", (event_id,)).fetchone()
    return rows.event_from(row) if row else None


def _as_request(event: LifecycleEvent) -> EventRequest:
    return EventRequest(event_type=event.event_type, task_id=event.task_id, data=event.data, ts=event.ts)


def _text(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    return str(value)[:200] if isinstance(value, (str, int)) and str(value).strip() else None


def _result_text(data: dict[str, Any]) -> str | None:
    value = data.get("result", data.get("deliverables"))
    if value is None:
        return None
    return value if isinstance(value, str) else rows.dumps(value)


def _lower(value: str | None) -> str | None:
    return value.strip().lower() if value else None


__all__ = ["event_job", "from_us"]
