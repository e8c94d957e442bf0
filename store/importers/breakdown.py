"""Seed 004's `task-breakdown.json`: a list of tasks, each with status, started_at / completed_at,
result, attempts, notes and dependencies. Each task becomes (pure; the runner writes):

* its executions, marked backfilled: one per attempt, chained by retry_of in one trace. The file
  keeps only the first start and the last end, so every attempt starts at `started_at`; the
  attempts before the last one did not finish (the task went back to pending), and are recorded
  as failed with error type `AttemptReset`; the last one is running (in_progress), success
  (completed, with `result`) or failed (failed: error type `TaskFailed`, message = result);
* its task row (state, attempts, started/completed, result, notes) as the file has it; an
  existing row is replaced only when the file's is newer (`status_updated_at`);
* a `task_created` event carrying description, module, priority, complexity and dependencies,
  and one `breakdown.note` event per note, so the task's timeline tells the same story.

Dependencies are task ids that had to finish first: they become the executions' `causes`.
Every id is derived from the task id and its first start, so importing the file again writes
nothing new; importing it after the work moved on finishes the execution that was running."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from store import rules
from store.fingerprint import stack_hash
from store.ids import execution_id, session_id, slugify
from store.importers.items import Item, Problem, content_id, maybe_time, parse_time, stable_uuid4
from store.lifecycle import MAX_NOTES
from store.models import ErrorInfo, Execution, LifecycleEvent, Retrieval, TaskNote
from store.records import StoredTask
from store.timeutil import duration_ms, now_utc, to_us

STATES = {"pending": "pending", "in_progress": "in_progress", "completed": "completed", "failed": "failed"}
_ABOUT = ("description", "module", "priority", "estimated_complexity", "dependencies")


def is_breakdown(doc: object) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("tasks"), list)


@dataclass(frozen=True)
class _Task:
    """One entry of the file, read and checked."""

    task_id: str
    raw: dict[str, Any]
    state: str
    attempts: int
    started: datetime | None
    completed: datetime | None
    updated: datetime
    notes: list[TaskNote]
    dependencies: list[str]


def breakdown_items(
    doc: dict[str, Any], where: str, policy: rules.Policy, prefix: str = ""
) -> list[Item | Problem]:
    generated = _generated(doc)
    out: list[Item | Problem] = []
    for index, raw in enumerate(doc["tasks"]):
        spot = f"{where}: tasks[{index}]" + (f" ({raw.get('id')})" if isinstance(raw, dict) else "")
        try:
            task = _read(raw, generated, prefix, policy)
        except (ValueError, TypeError, KeyError) as exc:
            out.append(Problem(spot, str(exc)))
            continue
        out.extend(Item(spot, kind, payload) for kind, payload in _records(task, generated, policy))  # type: ignore[arg-type]
    return out


def _generated(doc: dict[str, Any]) -> datetime | None:
    try:
        return maybe_time(doc.get("generated_at"), "generated_at")
    except ValueError:
        return None


def _read(raw: object, generated: datetime | None, prefix: str, policy: rules.Policy) -> _Task:
    if not isinstance(raw, dict) or not raw.get("id"):
        raise ValueError("a task entry must be an object with an id")
    status = raw.get("status") or "pending"
    if status not in STATES:
        raise ValueError(f"status {status!r} is not one of {', '.join(STATES)}")
    started = maybe_time(raw.get("started_at"), "started_at")
    completed = maybe_time(raw.get("completed_at"), "completed_at")
    notes = [_note(n, started or generated, policy) for n in raw.get("notes") or []]
    attempts = int(raw.get("attempts") or 0)
    if status != "pending" and started is not None:
        attempts = max(attempts, 1)  # a started task was attempted at least once
    known = [
        t for t in (maybe_time(raw.get("status_updated_at"), "status_updated_at"), completed, started) if t
    ]
    known += sorted((n.timestamp for n in notes), reverse=True) + ([generated] if generated else [])
    if not known:
        raise ValueError("no timestamp at all (generated_at, started_at, notes) to place the task in time")
    updated = known[0]
    deps = [f"{prefix}{d}" for d in raw.get("dependencies") or []]
    return _Task(
        f"{prefix}{raw['id']}", raw, STATES[status], attempts, started, completed, updated, notes, deps
    )


def _note(raw: object, fallback: datetime | None, policy: rules.Policy) -> TaskNote:
    if isinstance(raw, str):
        raw = {"note": raw}
    if not isinstance(raw, dict) or not isinstance(raw.get("note"), str):
        raise ValueError(f"note {raw!r} is not {{timestamp, note}}")
    when = maybe_time(raw.get("timestamp"), "notes[].timestamp") or fallback
    if when is None:
        raise ValueError(f"note {raw['note']!r} has no timestamp, and neither has the task")
    return TaskNote(timestamp=when, note=rules.scrub(policy, raw["note"]) or "")


def _records(task: _Task, generated: datetime | None, policy: rules.Policy) -> list[tuple[str, Any]]:
    runs = _executions(task, policy)
    trace = runs[0].trace_id if runs else None
    events = _events(task, generated, trace, policy)
    state = StoredTask(
        task_id=task.task_id, state=task.state, attempts=task.attempts,  # type: ignore[arg-type]
        current_trace_id=trace, current_span_id=runs[-1].span_id if runs else None, started_at=task.started,
        completed_at=task.completed if task.state in ("completed", "failed") else None,
        result=rules.scrub(policy, task.raw.get("result")), updated_at=task.updated,
        notes=task.notes[-MAX_NOTES:], last_event_at=max((e.ts for e in events), default=None),
    )  # fmt: skip
    created, *notes = events
    return [
        *(("execution", r) for r in runs), ("first_event", created), *(("raw_event", e) for e in notes),
        ("task", state),
    ]  # fmt: skip


def _executions(task: _Task, policy: rules.Policy) -> list[Execution]:
    if task.started is None or task.attempts == 0:
        return []
    first = task.started.isoformat()
    trace = stable_uuid4("breakdown", task.task_id, first, "trace")
    runs: list[Execution] = []
    for attempt in range(1, task.attempts + 1):
        span = stable_uuid4("breakdown", task.task_id, first, attempt)
        outcome = _outcome(task, attempt, policy)
        runs.append(
            _execution(task, trace, span, attempt, runs[-1].span_id if runs else None, outcome, policy)
        )
    return runs


@dataclass(frozen=True)
class _Outcome:
    status: str
    ended: datetime | None
    error: ErrorInfo | None
    result: str | None


def _outcome(task: _Task, attempt: int, policy: rules.Policy) -> _Outcome:
    assert task.started is not None
    last = attempt == task.attempts
    result = rules.scrub(policy, task.raw.get("result"))
    if last and task.state == "in_progress":
        return _Outcome("running", None, None, None)
    ended = max(task.completed or task.started, task.started) if last else task.started
    if last and task.state == "completed":
        return _Outcome("success", ended, None, result)
    if last and task.state == "failed":
        message = result or "task-breakdown.json marks the task failed and gives no details"
        return _Outcome("failed", ended, _error("TaskFailed", message), result)
    message = f"attempt {attempt} of {task.attempts} went back to pending before it finished"
    return _Outcome("failed", ended, _error("AttemptReset", message), None)


def _error(kind: str, message: str) -> ErrorInfo:
    return ErrorInfo(type=kind, message=message, stack=None, stack_hash=stack_hash(kind, None, message))


def _execution(
    task: _Task, trace: str, span: str, attempt: int, retry_of: str | None, o: _Outcome, policy: rules.Policy
) -> Execution:
    assert task.started is not None
    about = {key: task.raw[key] for key in _ABOUT if key in task.raw}
    return Execution(
        execution_id=execution_id(task.task_id, task.started, span), task_id=task.task_id,
        task_slug=slugify(task.task_id), task_name=_name(task.raw), trace_id=trace, span_id=span,
        attempt=attempt, retry_of=retry_of, status=o.status, started_at=task.started, ended_at=o.ended,  # type: ignore[arg-type]
        duration_ms=duration_ms(to_us(task.started), to_us(o.ended)) if o.ended else None, error=o.error,
        retrieval=Retrieval(memory_count=0), causes=task.dependencies, result=o.result,
        attributes={"breakdown": rules.scrub_data(policy, about)}, backfilled=True, scrubbed=policy.scrub_pii,
        session_id=session_id(task.task_id, task.started, span), created_at=task.started,
    )  # fmt: skip


def _name(raw: dict[str, Any]) -> str | None:
    text = raw.get("description")
    return str(text)[:500] if text else None


def _events(
    task: _Task, generated: datetime | None, trace: str | None, policy: rules.Policy
) -> list[LifecycleEvent]:
    created = generated or task.started or task.updated
    about = {key: task.raw[key] for key in _ABOUT if key in task.raw}
    data = rules.scrub_data(
        policy, {**about, "dependencies": task.dependencies, "source": "task-breakdown.json"}
    )
    events = [_event(task.task_id, "task_created", created, trace, data)]
    events += [
        _event(task.task_id, "breakdown.note", n.timestamp, trace, {"note": n.note}) for n in task.notes
    ]
    return events


def _event(task_id: str, kind: str, ts: datetime, trace: str | None, data: dict[str, Any]) -> LifecycleEvent:
    identity = {"task_id": task_id, "event_type": kind, "ts": ts.isoformat(), "data": data}
    return LifecycleEvent(
        event_id=content_id("breakdown", identity), event_type=kind, task_id=task_id, trace_id=trace,
        ts=ts, data=data, recorded_at=now_utc(),
    )  # fmt: skip


__all__ = ["breakdown_items", "is_breakdown", "parse_time"]
