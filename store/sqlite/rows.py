"""Rows become models here and nowhere else, and models become rows here and nowhere else."""

from __future__ import annotations

import json
import operator
from collections.abc import Sequence
from typing import Any

from store.models import (
    Execution,
    LifecycleEvent,
    TaskNote,
    TaskStatus,
)
from store.timeutil import from_us, to_us

EXECUTION_COLUMNS: tuple[str, ...] = (
    "execution_id", "span_id", "trace_id", "parent_span_id", "task_id", "task_slug", "task_name", "task_type",
    "trigger", "actor", "worker_id", "attempt", "retry_of", "idempotency_key", "status", "started_us",
    "ended_us",
    "duration_ms", "scheduled_us", "error_type", "error_message", "error_stack", "stack_hash", "result",
    "input_tokens", "output_tokens", "cost", "backfilled", "scrubbed", "session_id", "created_us", "detail",
)  # fmt: skip
EXECUTION_SELECT = ", ".join(EXECUTION_COLUMNS)

EVENT_COLUMNS: tuple[str, ...] = (
    "event_id", "event_type", "task_id", "trace_id", "span_id", "actor", "ts_us", "data", "anomaly",
    "recorded_us",
)  # fmt: skip
EVENT_SELECT = ", ".join(EVENT_COLUMNS)

TASK_COLUMNS: tuple[str, ...] = (
    "task_id", "state", "attempts", "assigned_to", "current_trace_id", "current_span_id", "started_us",
    "completed_us", "result", "last_event_us", "terminal_event_id", "notes", "updated_us",
)  # fmt: skip
TASK_SELECT = ", ".join(TASK_COLUMNS)


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


def dumps(value: Any) -> str:
    # One encoder for every call: json.dumps with options builds a new JSONEncoder each time.
    return _ENCODER.encode(value)


def _maybe_us(value: Any) -> int | None:
    return None if value is None else to_us(value)


def _maybe_dt(value: int | None) -> Any:
    return None if value is None else from_us(value)


OUTCOME_COLUMNS: tuple[str, ...] = (
    "status", "ended_us", "duration_ms", "error_type", "error_message", "error_stack", "stack_hash", "result",
    "input_tokens", "output_tokens", "cost", "detail",
)  # fmt: skip
"""What finishing an execution changes: the columns of outcome_row, in order."""


def detail_text(e: Execution) -> str:
    """The detail column of `e`: what the columns do not hold, as JSON."""
    detail = {
        "retrieval": e.retrieval.model_dump(exclude_none=True),
        "parents": e.parents,
        "causes": e.causes,
        "io": e.io.model_dump(),
        "attributes": e.attributes,
        "task_config_digest": e.task_config_digest,
        "provenance_runner": e.provenance_runner.model_dump(exclude_none=True)
        if e.provenance_runner
        else None,
    }
    return dumps(detail)


def execution_row(e: Execution, detail: str | None = None) -> tuple[Any, ...]:
    """Values for EXECUTION_COLUMNS, in order; `detail` is `detail_text(e)` when the caller has it."""
    error = e.error
    return (
        e.execution_id, e.span_id, e.trace_id, e.parent_span_id, e.task_id, e.task_slug,
        e.task_name, e.task_type, e.trigger, e.actor, e.worker_id, e.attempt, e.retry_of,
        e.idempotency_key, e.status, to_us(e.started_at),
        _maybe_us(e.ended_at), e.duration_ms, _maybe_us(e.scheduled_at),
        error.type if error else None, error.message if error else None, error.stack if error else None,
        error.stack_hash if error else None, e.result,
        e.usage.input_tokens, e.usage.output_tokens, e.usage.cost, int(e.backfilled), int(e.scrubbed),
        e.session_id, to_us(e.created_at), detail_text(e) if detail is None else detail,
    )  # fmt: skip


def outcome_row(e: Execution, detail: str | None = None) -> tuple[Any, ...]:
    """Values for OUTCOME_COLUMNS (the same as execution_row gives for them), in order; `detail`
    is `_detail(e)` when the caller has it (finishing changes only its io)."""
    error = e.error
    return (
        e.status, _maybe_us(e.ended_at), e.duration_ms,
        error.type if error else None, error.message if error else None, error.stack if error else None,
        error.stack_hash if error else None, e.result,
        e.usage.input_tokens, e.usage.output_tokens, e.usage.cost,
        detail_text(e) if detail is None else detail,
    )  # fmt: skip


_COLUMN_FIELDS = tuple(
    name
    for name in EXECUTION_COLUMNS
    if not name.endswith("_us") and name not in {"error_type", "error_message", "error_stack", "stack_hash",
    "input_tokens", "output_tokens", "cost", "detail"}
)  # fmt: skip


_DETAIL_FIELDS = frozenset(
    ("retrieval", "parents", "causes", "io", "attributes", "task_config_digest", "provenance_runner")
)

# Row positions, looked up once: execution_from runs for every row of every read (20 to 100 a
# list page), and indexing a tuple costs less than zipping it into a dict first.
_AT = {name: i for i, name in enumerate(EXECUTION_COLUMNS)}
_COLUMN_VALUES = operator.itemgetter(*(_AT[name] for name in _COLUMN_FIELDS))
_DETAIL, _STARTED, _ENDED, _SCHEDULED, _CREATED = (
    _AT[c] for c in ("detail", "started_us", "ended_us", "scheduled_us", "created_us")
)
_ERROR_TYPE, _ERROR_MESSAGE, _ERROR_STACK, _STACK_HASH = (
    _AT[c] for c in ("error_type", "error_message", "error_stack", "stack_hash")
)
_INPUT_TOKENS, _OUTPUT_TOKENS, _COST = (_AT[c] for c in ("input_tokens", "output_tokens", "cost"))
_validate_execution = Execution.__pydantic_validator__.validate_python
_decode = json.JSONDecoder().decode


def execution_from(row: Sequence[Any]) -> Execution:
    # One validation of plain values (nested models as dicts): building each nested model on its
    # own first cost three times as much, and a list page maps 20 to 100 rows.
    if len(row) != len(EXECUTION_COLUMNS):  # a query's leading extra column left on, say
        raise ValueError(f"an execution row has {len(EXECUTION_COLUMNS)} columns, not {len(row)}")
    fields = dict(zip(_COLUMN_FIELDS, _COLUMN_VALUES(row), strict=True))
    detail = _decode(row[_DETAIL])
    if detail.keys() <= _DETAIL_FIELDS:
        fields.update(detail)
    else:  # the model forbids unknown fields, and a row is still read if some writer left another key
        fields.update((k, v) for k, v in detail.items() if k in _DETAIL_FIELDS)
    fields["started_at"] = from_us(row[_STARTED])
    fields["ended_at"] = _maybe_dt(row[_ENDED])
    fields["scheduled_at"] = _maybe_dt(row[_SCHEDULED])
    fields["created_at"] = from_us(row[_CREATED])
    fields["error"] = _error_from(row)
    fields["usage"] = {
        "input_tokens": row[_INPUT_TOKENS],
        "output_tokens": row[_OUTPUT_TOKENS],
        "cost": row[_COST],
    }
    return _validate_execution(fields)  # type: ignore[no-any-return]


def _error_from(row: Sequence[Any]) -> dict[str, Any] | None:
    if row[_ERROR_TYPE] is None:
        return None
    return {
        "type": row[_ERROR_TYPE],
        "message": row[_ERROR_MESSAGE] or "",
        "stack": row[_ERROR_STACK],
        "stack_hash": row[_STACK_HASH] or "",
    }


def event_row(e: LifecycleEvent) -> tuple[Any, ...]:
    return (
        e.event_id,
        e.event_type,
        e.task_id,
        e.trace_id,
        e.span_id,
        e.actor,
        to_us(e.ts),
        dumps(e.data),
        e.anomaly,
        to_us(e.recorded_at),
    )


def event_from(row: Sequence[Any]) -> LifecycleEvent:
    r = dict(zip(EVENT_COLUMNS, row, strict=True))
    return LifecycleEvent(
        event_id=r["event_id"], event_type=r["event_type"], task_id=r["task_id"], trace_id=r["trace_id"],
        span_id=r["span_id"], actor=r["actor"], ts=from_us(r["ts_us"]), data=json.loads(r["data"]),
        anomaly=r["anomaly"], recorded_at=from_us(r["recorded_us"]),
    )  # fmt: skip


def task_from(row: Sequence[Any]) -> TaskStatus:
    r = dict(zip(TASK_COLUMNS, row, strict=True))
    return TaskStatus(
        task_id=r["task_id"], state=r["state"], attempts=r["attempts"], assigned_to=r["assigned_to"],
        current_trace_id=r["current_trace_id"], current_span_id=r["current_span_id"],
        started_at=_maybe_dt(r["started_us"]), completed_at=_maybe_dt(r["completed_us"]), result=r["result"],
        updated_at=from_us(r["updated_us"]),
        notes=[TaskNote(timestamp=from_us(n["us"]), note=n["note"]) for n in json.loads(r["notes"])],
    )  # fmt: skip
