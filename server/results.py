"""What the read tools answer, and the pieces every answer shares: pydantic models built from the
store's models, each with a short `render()` (the write tools' receipts are in `server.receipts`).

The models are the tools' output schemas and structured content (and the CLI's `--json`); `render()` is
the text a person or a model reads at a glance. They are separate from the store's models on purpose:
the store keeps every field of an execution, while a list answer keeps what a reader needs to choose
the next call (ids, status, timing, the error) and leaves the full record to tasks_get.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

from server.render import clip, duration, plural, when
from store.models import (
    ErrorPattern,
    Execution,
    ExecutionDetail,
    ExecutionPage,
    Failure,
    LastFailed,
    LifecycleEvent,
    TraceView,
)

SUMMARY_MESSAGE_CHARS = 300  # a list answer must stay small; tasks_get has the whole message
TEXT_ROWS = 20  # rows in a text rendering; structured content always has them all


def _compact_nullables(schema: dict[str, Any]) -> None:
    """Write `X | None` fields as `"type": [X, "null"]` instead of pydantic's `anyOf`.

    Same meaning, but SDK clients re-validate every result against the output schema with `jsonschema`,
    and a list answer has hundreds of such fields: the `anyOf` form costs them about a third more."""
    for prop in schema.get("properties", {}).values():
        options = prop.get("anyOf")
        if not (isinstance(options, list) and len(options) == 2 and {"type": "null"} in options):
            continue
        other = options[0] if options[1] == {"type": "null"} else options[1]
        if isinstance(other.get("type"), str) and set(other) <= {"type", "format"}:
            del prop["anyOf"]
            prop.update(other, type=[other["type"], "null"])


class Part(BaseModel):
    """A piece of an answer (no rendering of its own)."""

    model_config = ConfigDict(frozen=True, json_schema_extra=_compact_nullables)


class ToolResult(Part):
    """Base of every answer: structured fields plus a short text rendering."""

    def render(self) -> str:
        raise NotImplementedError


class ErrorSummary(Part):
    type: str
    message: str = Field(description=f"the error message, cut to {SUMMARY_MESSAGE_CHARS} characters")
    stack_hash: str = Field(description="fingerprint of the stack; equal hashes are the same failure")


class RetrievalSummary(Part):
    memory_count: int
    source: list[str]


class IOSummary(Part):
    files_written: list[str]


class ExecutionSummary(ToolResult):
    """One execution as lists show it; tasks_get(span_id) returns the full record."""

    id: str = Field(description="the execution_id")
    task_id: str
    task_slug: str
    task_name: str | None
    task_type: str | None
    actor: str | None
    worker_id: str | None = Field(description="set on a worker's child execution")
    status: str = Field(description="running | success | failed | partial | cancelled")
    started_at: datetime
    ended_at: datetime | None
    duration_ms: int | None
    trace_id: str
    span_id: str
    parent_span_id: str | None
    attempt: int
    retry_of: str | None = Field(description="span_id of the attempt this one retries")
    error: ErrorSummary | None
    retrieval: RetrievalSummary
    io: IOSummary
    backfilled: bool

    @classmethod
    def of(cls, execution: Execution, **extra: Any) -> Self:
        return cls(**summary_fields(execution), **extra)

    def line(self) -> str:
        name = self.task_id if self.worker_id is None else f"{self.task_id} worker {self.worker_id}"
        text = f"- {self.status} {name} attempt {self.attempt} at {when(self.started_at)}"
        took = duration(self.duration_ms) if self.duration_ms is not None else "still running"
        text += f" ({took}) span_id={self.span_id} trace_id={self.trace_id}"
        return text + (f" - {self.error.type}: {clip(self.error.message, 120)}" if self.error else "")


def summary_fields(e: Execution) -> dict[str, Any]:
    error = e.error and ErrorSummary(
        type=e.error.type, message=clip(e.error.message, SUMMARY_MESSAGE_CHARS), stack_hash=e.error.stack_hash
    )
    return {
        **e.model_dump(include=_SHARED_FIELDS),
        "id": e.execution_id,
        "error": error,
        "retrieval": RetrievalSummary(memory_count=e.retrieval.memory_count or 0, source=e.retrieval.source),
        "io": IOSummary(files_written=e.io.files_written),
    }


_SHARED_FIELDS = set(ExecutionSummary.model_fields) - {"id", "error", "retrieval", "io"}


class EventSummary(Part):
    event_id: str
    event_type: str
    task_id: str
    trace_id: str | None
    span_id: str | None
    actor: str | None
    ts: datetime
    data: dict[str, Any]
    anomaly: str | None = Field(description="why this event was surprising, if it was")

    @classmethod
    def of(cls, event: LifecycleEvent) -> Self:
        return cls(**event.model_dump(include=set(cls.model_fields)))

    def line(self) -> str:
        who = f" by {self.actor}" if self.actor else ""
        flag = f" [anomaly: {self.anomaly}]" if self.anomaly else ""
        return f"- {when(self.ts)} {self.event_type} {self.task_id}{who}{flag}"


def _lines(rows: list[Any], what: str, limit: int = TEXT_ROWS) -> list[str]:
    """Row lines, with a note (never a silent cut) when the text shows fewer than there are."""
    lines = [row.line() for row in rows[:limit]]
    if len(rows) > limit:
        lines.append(f"  ... and {len(rows) - limit} more {what} in the structured content")
    return lines


class ExecutionList(ToolResult):
    executions: list[ExecutionSummary] = Field(description="newest first")
    total: int = Field(
        description="executions matching the filters (a lower bound when total_exact is false)"
    )
    total_exact: bool
    returned: int
    has_more: bool
    next_cursor: str | None = Field(description="pass as cursor to get the next page")

    @classmethod
    def of(cls, page: ExecutionPage) -> Self:
        rows = [ExecutionSummary.of(e) for e in page.executions]
        fields = page.model_dump(include={"total", "total_exact", "returned", "has_more", "next_cursor"})
        return cls(executions=rows, **fields)

    def render(self) -> str:
        if not self.executions:
            return "No executions match these filters."
        total = f"{self.total}" if self.total_exact else f"at least {self.total}"
        head = f"{self.returned} of {total} matching executions, newest first."
        if self.has_more:
            head += f' More: call again with cursor="{self.next_cursor}".'
        return "\n".join([head, *_lines(self.executions, "executions")])


class TraceResult(ToolResult):
    trace_id: str
    found: bool = Field(description="false when nothing is recorded under this trace_id")
    executions: list[ExecutionSummary] = Field(description="ordered by attempt, then start time")
    events: list[EventSummary] = Field(description="in time order")
    retry_count: int
    final_status: str | None

    @classmethod
    def of(cls, view: TraceView) -> Self:
        return cls(
            **view.model_dump(include={"trace_id", "found", "retry_count", "final_status"}),
            executions=[ExecutionSummary.of(e) for e in view.executions],
            events=[EventSummary.of(ev) for ev in view.events],
        )

    def render(self) -> str:
        if not self.found:
            return (
                f"Nothing is recorded under trace_id {self.trace_id}. Check the id; "
                "tasks_list and tasks_last_failed show the trace_ids of recent executions."
            )
        head = (
            f"Trace {self.trace_id}: {plural(len(self.executions), 'execution')}, "
            f"{plural(len(self.events), 'event')}, {plural(self.retry_count, 'retry', 'retries')}, "
            f"final status {self.final_status or 'unknown'}."
        )
        parts = [head, "Executions:", *_lines(self.executions, "executions")]
        if self.events:
            parts += ["Events:", *_lines(self.events, "events", limit=2 * TEXT_ROWS)]
        return "\n".join(parts)


class FailureSummary(ExecutionSummary):
    recent_events: list[EventSummary] = Field(description="the task's last events up to the failure")

    @classmethod
    def of_failure(cls, failure: Failure) -> Self:
        return cls.of(failure.execution, recent_events=[EventSummary.of(e) for e in failure.recent_events])

    def line(self) -> str:
        events = ", ".join(e.event_type for e in self.recent_events[-5:])
        return super().line() + (f"\n    last events: {events}" if events else "")


class ErrorPatternSummary(Part):
    stack_hash: str
    count: int
    first_seen: datetime
    last_seen: datetime
    error_type: str
    error_message: str
    example_task_id: str
    example_trace_id: str
    example_span_id: str

    @classmethod
    def of(cls, pattern: ErrorPattern) -> Self:
        return cls(
            **pattern.model_dump(exclude={"error_message"}), error_message=clip(pattern.error_message, 300)
        )

    def line(self) -> str:
        return (
            f"- {self.count}x {self.error_type}: {clip(self.error_message, 100)} "
            f"(stack_hash {self.stack_hash}; "
            f"{when(self.first_seen)} .. {when(self.last_seen)}; e.g. trace_id={self.example_trace_id})"
        )


class LastFailedResult(ToolResult):
    failures: list[FailureSummary] = Field(description="most recent first")
    error_patterns: list[ErrorPatternSummary] = Field(
        description="over every failure in the window, commonest first"
    )
    total_failures: int = Field(description="failures in the window, not just the ones returned")
    has_more: bool

    @classmethod
    def of(cls, view: LastFailed) -> Self:
        return cls(
            failures=[FailureSummary.of_failure(f) for f in view.failures],
            error_patterns=[ErrorPatternSummary.of(p) for p in view.error_patterns],
            total_failures=view.total_failures,
            has_more=view.has_more,
        )

    def render(self) -> str:
        if not self.failures:
            return "No failed executions in this window."
        head = f"{len(self.failures)} most recent of {plural(self.total_failures, 'failure')}."
        if self.has_more:
            head += " More: raise limit, or narrow with task_id / since."
        parts = [head, *_lines(self.failures, "failures")]
        parts += ["Error patterns:", *_lines(self.error_patterns, "patterns")]
        return "\n".join([*parts, "Next: tasks_by_trace(trace_id) shows a failure's whole story."])


class ExecutionDocument(ToolResult):
    document: dict[str, Any] = Field(description="the seed 002 TASK_EXECUTION experience document")
    events: list[EventSummary] = Field(description="this execution's lifecycle events, in time order")

    @classmethod
    def of(cls, detail: ExecutionDetail, document: dict[str, Any]) -> Self:
        return cls(document=document, events=[EventSummary.of(e) for e in detail.events])

    def render(self) -> str:
        s = self.document["content"]["structured"]
        head = f"Execution {self.document['id']} of {s['task_id']}, attempt {s['attempt']}: {s['status']}"
        parts = [
            f"{head} ({duration(s['duration_ms'])}).",
            f"trace_id={s['trace_id']} span_id={s['span_id']}",
        ]
        if s.get("error"):
            error = s["error"]
            parts.append(
                f"error: {error['type']}: {clip(error['message'], 300)} (stack_hash {error['stack_hash']})"
            )
        if not self.events:
            return "\n".join([*parts, "No lifecycle events are recorded for this execution."])
        return "\n".join([*parts, f"{plural(len(self.events), 'event')}:", *_lines(self.events, "events")])
