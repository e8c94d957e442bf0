"""Building and finishing execution records: seed 002's invariants, size limits, PII
scrubbing and stack hashing, applied at write time. Pure: callers pass in what the
database knows (the attempt being retried, the parent span) and get a record back."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from store.errors import Conflict, InvalidInput
from store.fingerprint import stack_hash
from store.ids import derived_idempotency_key, execution_id, is_uuid4, require_uuid4, session_id, slugify
from store.models import (
    USAGE_MAX,
    ErrorInfo,
    ErrorInput,
    Execution,
    FinishRequest,
    IOEffects,
    Retrieval,
    StartRequest,
    Usage,
)
from store.scrub import scrub_text
from store.timeutil import duration_ms, to_us


@dataclass(frozen=True)
class Policy:
    """What the store enforces at write time (from the settings)."""

    scrub_pii: bool = True
    max_text_chars: int = 65536
    max_data_bytes: int = 65536
    max_list_items: int = 1000


# ---- scrubbing -------------------------------------------------------------------------


def scrub(policy: Policy, text: str | None) -> str | None:
    if text is None or not policy.scrub_pii:
        return text
    return scrub_text(text)[0]


def scrub_data(policy: Policy, value: Any) -> Any:
    """Scrub strings inside JSON, leaving keys and `*_id`/`*_ids` identifier values alone."""
    if not policy.scrub_pii:
        return value
    if isinstance(value, str):
        return scrub_text(value)[0]
    if isinstance(value, list):
        return [scrub_data(policy, item) for item in value]
    if isinstance(value, dict):
        return {
            key: item if _is_identifier_key(key) else scrub_data(policy, item) for key, item in value.items()
        }
    return value


def _is_identifier_key(key: object) -> bool:
    return isinstance(key, str) and (key.endswith("_id") or key.endswith("_ids") or key in ("id", "ids"))


# ---- limits ----------------------------------------------------------------------------


def check_text(policy: Policy, field: str, text: str | None) -> None:
    if text is not None and len(text) > policy.max_text_chars:
        raise InvalidInput(
            field,
            f"is {len(text)} characters; the limit is {policy.max_text_chars}",
            hint="Send a shorter text (keep the head and tail of a long stack), or raise max_text_chars.",
        )


MAX_DATA_DEPTH = 32
"""How deeply JSON data (attributes, event data, retrieval filters) may nest. Deeper documents
are refused at write time: MCP clients' JSON parsers stop at ~200 levels, so a record stored
that deep could never be read back through tasks_get."""


def check_data(policy: Policy, field: str, value: Any) -> None:
    if type(value) is dict and not value:  # the common case: none given
        return
    _check_json_values(field, value, 1)
    size = len(json.dumps(value, default=str).encode())
    if size > policy.max_data_bytes:
        raise InvalidInput(
            field,
            f"is {size} bytes as JSON; the limit is {policy.max_data_bytes}",
            hint="Store large payloads elsewhere and record a reference, or raise max_data_bytes.",
        )


def _check_json_values(path: str, value: Any, depth: int) -> None:
    """Refuse what JSON cannot carry faithfully: NaN and infinities (they would be stored as
    null), and nesting deeper than MAX_DATA_DEPTH. (NUL in text: store.store.check_encodable.)"""
    if type(value) is float and not math.isfinite(value):
        raise InvalidInput(
            path,
            f"is {value}, which JSON cannot hold",
            hint='Send a finite number, or null or a string such as "NaN" for a missing value.',
        )
    if isinstance(value, dict | list):
        if depth > MAX_DATA_DEPTH:
            raise InvalidInput(
                path,
                f"nests deeper than {MAX_DATA_DEPTH} levels of objects and lists",
                hint="Flatten the data (dotted keys, or a JSON string for the deep part).",
            )
        if isinstance(value, dict):
            children = ((f"{path}.{key}", item) for key, item in value.items())
        else:
            children = ((f"{path}[{index}]", item) for index, item in enumerate(value))
        for where, item in children:
            _check_json_values(where, item, depth + 1)


def check_list(policy: Policy, field: str, items: list[Any]) -> None:
    if len(items) > policy.max_list_items:
        raise InvalidInput(
            field,
            f"has {len(items)} items; the limit is {policy.max_list_items}",
            hint="Record fewer items (or a summary), or raise max_list_items.",
        )


def check_start_limits(policy: Policy, req: StartRequest) -> None:
    check_list(policy, "parents", req.parents)
    check_list(policy, "causes", req.causes)
    check_data(policy, "attributes", req.attributes)
    if req.retrieval is not None:
        check_text(policy, "retrieval.query", req.retrieval.query)
        check_data(policy, "retrieval.filters", req.retrieval.filters)


def check_outcome_limits(
    policy: Policy, error: ErrorInput | None, result: str | None, io: IOEffects | None, usage: Usage | None
) -> None:
    check_text(policy, "result", result)
    check_usage(usage)
    if error is not None:
        check_text(policy, "error.message", error.message)
        check_text(policy, "error.stack", error.stack)
    if io is not None:
        for name in ("files_written", "artifact_ids", "tool_calls", "script_runs"):
            check_list(policy, f"io.{name}", getattr(io, name))


def check_usage(usage: Usage | None) -> None:
    """A run's tokens and cost up to USAGE_MAX, so the statistics' sums stay within 64 bits."""
    for name in ("input_tokens", "output_tokens", "cost"):
        value = getattr(usage, name) if usage is not None else None
        if value is not None and value > USAGE_MAX:
            raise InvalidInput(
                f"usage.{name}",
                f"is {value:,}; one run records at most {USAGE_MAX:,} (a trillion)",
                hint="Send the run's own usage; a sum over many runs is what tasks_stats reports.",
            )


# ---- clocks ----------------------------------------------------------------------------

MAX_AHEAD = timedelta(days=1)
"""How far past the server's clock a caller's timestamp may be (clock skew, zones mixed up);
anything later is refused: one far-future time would make every later event look late."""


def check_not_future(field: str, moment: datetime | None, now: datetime) -> None:
    if moment is not None and moment - now > MAX_AHEAD:
        raise InvalidInput(
            field,
            f"{moment.isoformat()} is more than a day after the server's clock ({now.isoformat()})",
            hint="Send the real time with its zone (e.g. 2025-11-05T10:00:00Z) or omit it to use the time "
            "of this call; check the sender's clock and time zone.",
        )


# ---- building records ------------------------------------------------------------------


@dataclass(frozen=True)
class Lineage:
    """What the database knows about the execution's relatives."""

    retried: Execution | None = None
    parent: Execution | None = None


def new_execution(req: StartRequest, policy: Policy, lineage: Lineage, now: datetime) -> Execution:
    """A running execution for `req`; raises InvalidInput naming the first bad field."""
    check_start_limits(policy, req)
    check_not_future("started_at", req.started_at, now)
    check_not_future("scheduled_at", req.scheduled_at, now)
    started = req.started_at or now
    span_id = require_uuid4("span_id", req.span_id)
    trace_id, attempt = _trace_and_attempt(req, lineage)
    _check_after_retried(started, lineage.retried)
    memory_count = _memory_count(req)
    # One dict validated at once: a little cheaper than keyword arguments, on every start.
    return Execution.model_validate(dict(
        execution_id=execution_id(req.task_id, started, span_id),
        task_id=req.task_id,
        task_slug=req.task_slug or slugify(req.task_id),
        task_name=req.task_name,
        task_type=req.task_type,
        trigger=req.trigger,
        actor=req.actor,
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=req.parent_span_id,
        attempt=attempt,
        retry_of=req.retry_of,
        idempotency_key=_idempotency_key(req, attempt),
        status="running",
        started_at=started,
        scheduled_at=req.scheduled_at,
        retrieval=_retrieval(policy, req.retrieval, memory_count),
        parents=list(req.parents),
        causes=list(req.causes),
        attributes=scrub_data(policy, req.attributes),
        task_config_digest=req.task_config_digest,
        provenance_runner=req.provenance_runner,
        scrubbed=policy.scrub_pii,
        session_id=session_id(req.task_id, started, span_id),
        created_at=now,
    ))  # fmt: skip


def _trace_and_attempt(req: StartRequest, lineage: Lineage) -> tuple[str, int]:
    if lineage.retried is not None:
        _check_same_task(req, lineage.retried)
        trace_id = lineage.retried.trace_id
        if req.trace_id is not None and req.trace_id.strip().lower() != trace_id:
            raise InvalidInput(
                "trace_id",
                f"{req.trace_id} differs from the trace {trace_id} of the attempt it retries "
                f"({req.retry_of})",
                hint="Omit trace_id when retry_of is given: a retry stays on its first attempt's trace.",
            )
        _check_finished(lineage.retried)
        return trace_id, lineage.retried.attempt + 1
    if lineage.parent is not None:
        if req.trace_id is not None and req.trace_id.strip().lower() != lineage.parent.trace_id:
            raise InvalidInput(
                "trace_id",
                f"{req.trace_id} differs from the trace {lineage.parent.trace_id} of its parent "
                f"({req.parent_span_id})",
                hint="Omit trace_id when parent_span_id is given: child work runs on its parent's trace.",
            )
        return lineage.parent.trace_id, 1
    return require_uuid4("trace_id", req.trace_id), 1


def _check_after_retried(started: datetime, retried: Execution | None) -> None:
    """A retry repeats an attempt, so it starts after it did: an earlier start would list the
    attempts of the trace out of order."""
    if retried is not None and started < retried.started_at:
        raise InvalidInput(
            "started_at",
            f"{started.isoformat()} is before the attempt it retries started "
            f"({retried.started_at.isoformat()})",
            hint="Pass the retry's real start time (after its previous attempt's), or omit started_at.",
        )


def _check_same_task(req: StartRequest, retried: Execution) -> None:
    """A retry repeats an attempt of the same task: another task's execution would pull this run
    into that task's trace."""
    if retried.task_id != req.task_id:
        raise InvalidInput(
            "retry_of",
            f"{retried.span_id} is an execution of task {retried.task_id}, not of {req.task_id}",
            hint="Pass the span_id of one of this task's executions (tasks_list with task_id shows them), "
            "or omit retry_of to start a first attempt.",
        )


def _check_finished(retried: Execution) -> None:
    """A running attempt has no outcome yet (it may still succeed), so it cannot be retried.
    Retrying a success is a legitimate re-run and stays allowed."""
    if retried.status == "running":
        raise Conflict(
            "retry_of",
            f"execution {retried.span_id} is still running; its outcome is not known yet",
            hint="Finish it first (tasks_finish with its span_id and status), then start the retry.",
        )


def _memory_count(req: StartRequest) -> int:
    given = req.retrieval.memory_count if req.retrieval is not None else None
    if given is None:
        return len(req.parents)
    if given != len(req.parents):
        raise InvalidInput(
            "parents",
            f"has {len(req.parents)} entries but retrieval.memory_count is {given}",
            hint="List one parent id per retrieved memory, or correct retrieval.memory_count.",
        )
    return given


def _retrieval(policy: Policy, given: Retrieval | None, memory_count: int) -> Retrieval:
    if given is None:
        return Retrieval(memory_count=memory_count)
    return given.model_copy(
        update={
            "memory_count": memory_count,
            "query": scrub(policy, given.query),
            "filters": scrub_data(policy, given.filters),
        }
    )


def _idempotency_key(req: StartRequest, attempt: int) -> str | None:
    if req.idempotency_key is not None:
        return req.idempotency_key
    if req.scheduled_at is not None:
        return derived_idempotency_key(req.task_id, req.scheduled_at, attempt)
    return None


def finished(
    execution: Execution,
    req: FinishRequest,
    policy: Policy,
    now: datetime,
) -> Execution:
    """`execution` closed with the outcome in `req`."""
    check_outcome_limits(policy, req.error, req.result, req.io, req.usage)
    check_not_future("ended_at", req.ended_at, now)
    ended = req.ended_at or now
    if ended < execution.started_at:
        raise InvalidInput(
            "ended_at",
            f"{ended.isoformat()} is before the execution started ({execution.started_at.isoformat()})",
            hint="Pass the real end time, or omit ended_at to use the time of this call.",
        )
    error = _error_info(policy, req.status, req.error)
    return execution.model_copy(
        update={
            "status": req.status,
            "ended_at": ended,
            "duration_ms": duration_ms(to_us(execution.started_at), to_us(ended)),
            "error": error,
            "result": scrub(policy, req.result),
            "io": req.io or execution.io,
            "usage": req.usage or execution.usage,
        }
    )


def _error_info(policy: Policy, status: str, error: ErrorInput | None) -> ErrorInfo | None:
    if error is not None and status == "success":
        raise InvalidInput(
            "error",
            "is given for a successful execution",
            hint="Use status failed for a run that failed (partial for one that did part of its work, "
            "cancelled for one stopped), or leave error out.",
        )
    if error is None:
        if status == "failed":
            raise InvalidInput(
                "error",
                "a failed execution needs error.type and error.message",
                hint='Pass error: {"type": "TimeoutError", "message": "...", "stack": "..."}.',
            )
        return None
    return ErrorInfo(
        type=error.type,
        message=scrub(policy, error.message) or "",
        stack=scrub(policy, error.stack),
        stack_hash=stack_hash(error.type, error.stack, error.message),
    )


def same_outcome(execution: Execution, req: FinishRequest) -> bool:
    """Finishing twice is a no-op only when it says the same thing (status, and error type)."""
    if execution.status != req.status:
        return False
    if req.status != "failed" or execution.error is None or req.error is None:
        return True
    return execution.error.type == req.error.type


def check_invariants(execution: Execution) -> None:
    """Seed 002's invariants, checked on a whole record (used for imported documents)."""
    for field in ("trace_id", "span_id"):
        if not is_uuid4(getattr(execution, field)):
            raise InvalidInput(field, f"{getattr(execution, field)!r} is not a UUIDv4")
    if execution.attempt < 1:
        raise InvalidInput("attempt", f"is {execution.attempt}; attempts count from 1")
    if (execution.attempt == 1) != (execution.retry_of is None):
        raise InvalidInput("attempt", "must be 1 exactly when retry_of is empty")
    if execution.status == "failed" and execution.error is None:
        raise InvalidInput("error", "a failed execution needs error.type and error.message")
    if execution.ended_at is not None and execution.ended_at < execution.started_at:
        raise InvalidInput("ended_at", "is before started_at")
    if execution.retrieval.memory_count != len(execution.parents):
        raise InvalidInput("parents", "length must equal retrieval.memory_count")


def empty_outcome() -> tuple[IOEffects, Usage]:
    return IOEffects(), Usage()
