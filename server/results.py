"""What the read tools answer, and the pieces every answer shares: pydantic models built from the
store's models, each with a short `render()` (the write tools' receipts are in `server.receipts`,
the debugging tools' answers in `server.results_debug`).

The models are the tools' output schemas and structured content (and the CLI's `--json`); `render()` is
the text a person or a model reads at a glance. They are separate from the store's models on purpose:
the store keeps every field of an execution, while an answer keeps what the requested `detail` asks
for and what fits `max_tokens` (server.budget), and says what it left out.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Self, TypeVar
from urllib.parse import quote

from pydantic import Field, PrivateAttr

from server.answer import Part, ToolResult
from server.budget import STANDARD, Shape, Sized, decode_offsets, encode_offsets, item_paths
from server.render import clip, counted, duration, plural, when
from store.analysis import STALE_AFTER, trace_outcome
from store.errors import InvalidInput
from store.models import (
    PATTERNS_SHOWN,
    ErrorPattern,
    Execution,
    ExecutionDetail,
    ExecutionPage,
    Failure,
    LastFailed,
    LifecycleEvent,
    TraceView,
)

SUMMARY_MESSAGE_CHARS = 300  # the standard detail's cut; tasks_get has the whole message
TEXT_ROWS = 20  # rows in a text rendering; structured content has every row it returns
EXECUTION_URI = "task-history://execution/{span_id}"
TRACE_URI = "task-history://trace/{trace_id}"
EVENT_URI = "task-history://event/{event_id}"


def resource_uri(template: str, **ids: str) -> str:
    """`template` with its ids percent-encoded: a caller's event_id or span_id may hold '/', '?' or
    '#', which would otherwise make the URI name another resource or none (the SDK decodes them)."""
    return template.format(**{name: quote(value, safe="") for name, value in ids.items()})


def age(elapsed: timedelta) -> str:
    """A time span in the unit a person reads: 40 s, 12 min, 5 h, 12 days."""
    seconds = int(elapsed.total_seconds())
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 90 * 60:
        return f"{seconds // 60} min"
    if seconds < 48 * 3600:
        return f"{seconds // 3600} h"
    return plural(seconds // 86_400, "day")


def no_end(started_at: datetime, now: datetime | None = None) -> str:
    """What a run without an end is. Not "still running": its process may have died days ago, and
    the store only knows that nothing recorded an end."""
    elapsed = (now or datetime.now(UTC)) - started_at
    if elapsed < timedelta(0):
        return "no end recorded, started in the future (a writer's clock is ahead)"
    return f"no end recorded, started {age(elapsed)} ago"


class ErrorSummary(Part):
    type: str
    message: str = Field(description="the error message (cut at 120/300/2,000 chars by detail)")
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
        return cls.model_validate({**summary_fields(execution), **extra})

    def line(self) -> str:
        name = self.task_id if self.worker_id is None else f"{self.task_id} worker {self.worker_id}"
        text = f"- {self.status} {name} attempt {self.attempt} at {when(self.started_at)}"
        took = duration(self.duration_ms) if self.duration_ms is not None else self.open_ended()
        text += f" ({took}) span_id={self.span_id} trace_id={self.trace_id}"
        return text + (f" - {self.error.type}: {clip(self.error.message, 120)}" if self.error else "")

    def open_ended(self) -> str:
        return no_end(self.started_at) if self.status == "running" else "-"


def summary_fields(e: Execution, shape: Shape = STANDARD, where: str = "executions[]") -> dict[str, Any]:
    """The summary's fields as plain values (nested parts as dicts): the answer model validates
    them once, which costs a third of building each nested part as a model first."""
    error = e.error and {
        "type": e.error.type,
        "message": shape.text(e.error.message, "message", f"{where}.error.message", one_line=True) or "",
        "stack_hash": e.error.stack_hash,
    }
    return {
        **{name: getattr(e, name) for name in _SHARED_FIELDS},
        "id": e.execution_id,
        "error": error,
        "retrieval": {"memory_count": e.retrieval.memory_count or 0, "source": e.retrieval.source},
        "io": {"files_written": e.io.files_written},
    }


_SHARED_FIELDS = tuple(
    name for name in ExecutionSummary.model_fields if name not in {"id", "error", "retrieval", "io"}
)


# ---- rows of the read answers (detail-aware) ---------------------------------------------


class ErrorDetail(ErrorSummary):
    stack: str | None = Field(None, description="the traceback (detail=full)")


class IODetail(IOSummary):
    tool_calls: list[str] | None = None
    artifact_ids: list[str] | None = None
    script_runs: list[str] | None = None


class UsageSummary(Part):
    input_tokens: int | None
    output_tokens: int | None
    cost: float | None


class ExecutionRow(ExecutionSummary):
    """An execution in a read answer: the summary, plus at detail=full its stack, result, usage,
    attributes and every side effect (each clipped to the detail's cap)."""

    # Optional here (absent at some detail levels, or dropped to fit max_tokens).
    id: str | None = Field(None, description="the execution_id")
    task_slug: str | None = None
    task_name: str | None = None
    task_type: str | None = None
    actor: str | None = None
    ended_at: datetime | None = None
    parent_span_id: str | None = None
    retry_of: str | None = Field(None, description="span_id of the attempt this one retries")
    retrieval: RetrievalSummary | None = None
    backfilled: bool | None = None
    error: ErrorDetail | None
    io: IODetail | None = None
    result: str | None = Field(None, description="the task's result text (detail=full)")
    usage: UsageSummary | None = None
    attributes: dict[str, Any] | None = None

    EXCLUDED: ClassVar[dict[str, tuple[str, ...]]] = {
        "summary": (
            "id",
            "task_slug",
            "task_name",
            "task_type",
            "actor",
            "ended_at",
            "parent_span_id",
            "retry_of",
            "retrieval",
            "io",
            "backfilled",
            "result",
            "usage",
            "attributes",
            "error.stack",
        ),
        "standard": (
            "result",
            "usage",
            "attributes",
            "error.stack",
            "io.tool_calls",
            "io.artifact_ids",
            "io.script_runs",
        ),
        "full": (),
    }
    # Heavy free text and inputs first; ids, status, error type and message and timing never.
    DROPS: ClassVar[tuple[str, ...]] = (
        "error.stack",
        "result",
        "attributes",
        "retrieval",
        "io",
        "usage",
        "task_slug",
        "task_name",
        "backfilled",
        "parent_span_id",
        "retry_of",
        "actor",
        "task_type",
        "id",
    )

    @classmethod
    def of(
        cls, execution: Execution, shape: Shape = STANDARD, where: str = "executions[]", **extra: Any
    ) -> Self:
        e = execution
        fields = summary_fields(e, shape, where)
        full = shape.detail == "full"
        if full:
            fields["io"] = e.io.model_dump()
            if e.error is not None:
                fields["error"]["stack"] = shape.text(e.error.stack, "stack", f"{where}.error.stack")
            extra = {
                "result": shape.text(e.result, "result", f"{where}.result"),
                "usage": e.usage.model_dump(),
                "attributes": e.attributes,
                **extra,
            }
        return cls.model_validate({**fields, **extra})


class EventSummary(Part):
    event_id: str | None = None
    event_type: str
    task_id: str | None = None
    trace_id: str | None = None
    span_id: str | None
    actor: str | None
    ts: datetime
    data: dict[str, Any] | None = None
    anomaly: str | None = Field(description="why this event was surprising, if it was")

    EXCLUDED: ClassVar[dict[str, tuple[str, ...]]] = {
        "summary": ("event_id", "task_id", "trace_id", "data"),
        "standard": (),
        "full": (),
    }
    DROPS: ClassVar[tuple[str, ...]] = ("data", "event_id", "trace_id", "task_id")

    @classmethod
    def of(cls, event: LifecycleEvent, shape: Shape = STANDARD, where: str = "events[]") -> Self:
        fields = event.model_dump(include=set(cls.model_fields))
        if shape.detail != "summary":
            fields["data"] = shape.data(
                event.data, f"{where}.data", lambda: resource_uri(EVENT_URI, event_id=event.event_id)
            )
        return cls(**fields)

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


def whole_event_hint(answer: Sized) -> list[str]:
    """The hint for clipped event data, which names its own resource (Shape.data's `whole`)."""
    if any(name.endswith("].data") for name in answer.clipped_fields):
        return ["An event's whole data: the resource in its data.whole."]
    return []


def cut_note(answer: Sized) -> list[str]:
    """The text block's line saying what the answer left out, if anything (the structured
    content names the fields)."""
    if not answer.truncated:
        return []
    parts = []
    if answer.dropped_fields:
        parts.append(f"{plural(len(answer.dropped_fields), 'field')} dropped")
    if answer.clipped_fields:
        parts.append(f"{plural(len(answer.clipped_fields), 'text')} clipped")
    if answer.omitted:
        parts.append(f"{plural(answer.omitted, 'item')} omitted")
    return [f"Not everything is here ({', '.join(parts)}). {answer.rest or ''}".rstrip()]


def _rows(prefix: str, model: Any) -> dict[str, tuple[str, ...]]:
    return {detail: item_paths(prefix, paths) for detail, paths in model.EXCLUDED.items()}


def _merge(*tables: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    return {
        d: tuple(p for table in tables for p in table.get(d, ())) for d in ("summary", "standard", "full")
    }


_EXECUTION_HEAVY = ("error.stack", "result", "attributes")


def _execution_drops(prefix: str) -> tuple[str, ...]:
    return item_paths(prefix, ExecutionRow.DROPS)


# ---- tasks_list --------------------------------------------------------------------------

CURSOR_ROOM = "~" * 96  # stands in for a cursor while fitting; every real cursor is shorter


class ExecutionList(Sized):
    executions: list[ExecutionRow] = Field(description="newest first")
    total: int = Field(
        description="executions matching the filters (a lower bound when total_exact is false)"
    )
    total_exact: bool
    returned: int
    has_more: bool
    next_cursor: str | None = Field(description="pass as cursor to get the next page")

    EXCLUDED = _rows("executions.*", ExecutionRow)
    DROP_ORDER = _execution_drops("executions.*")
    TRIM = ("executions",)

    @classmethod
    def of(cls, page: ExecutionPage, shape: Shape = STANDARD) -> Self:
        rows = [ExecutionRow.of(e, shape) for e in page.executions]
        fields = page.model_dump(include={"total", "total_exact", "returned", "has_more", "next_cursor"})
        return cls(executions=rows, detail=shape.detail, **fields).settled(shape.clipped)

    def trimmed(self, name: str, keep: int) -> Self:
        cut = super().trimmed(name, keep)
        return cut.model_copy(update={"returned": keep, "has_more": True, "next_cursor": CURSOR_ROOM})

    def rest_hint(self) -> str | None:
        hints = []
        if self.omitted:
            hints.append(
                "The next executions: call tasks_list again with cursor=next_cursor and the same filters."
            )
        if self.dropped_fields or self.clipped_fields:
            hints.append(f"Any execution in full: tasks_get(span_id) or the resource {EXECUTION_URI}.")
        if self.omitted or self.dropped_fields:
            hints.append("detail='summary' fits more rows.")
        return " ".join(hints)

    def render(self) -> str:
        if not self.executions and not self.omitted:
            return "No executions match these filters."
        total = counted(self.total, self.total_exact)
        head = f"{self.returned} of {total} matching executions, newest first."
        if self.has_more and self.next_cursor:
            head += f' More: call again with cursor="{self.next_cursor}".'
        return "\n".join([head, *_lines(self.executions, "executions"), *cut_note(self)])


# ---- tasks_by_trace ----------------------------------------------------------------------


T = TypeVar("T")


def _up_to(items: list[T], seqs: list[int], bound: int) -> list[T]:
    """`items` whose row number is at most `bound` (all of them when the view carries no seqs)."""
    if not seqs:
        return items
    return [item for item, seq in zip(items, seqs, strict=True) if seq <= bound]


class TraceResult(Sized):
    trace_id: str
    found: bool = Field(description="false when nothing is recorded under this trace_id")
    executions: list[ExecutionRow] = Field(description="ordered by attempt, then start time")
    events: list[EventSummary] = Field(description="in time order")
    retry_count: int
    final_status: str | None
    returned: int = Field(0, description="executions + events in this answer")
    total: int = Field(0, description="executions + events recorded under the trace")
    next_cursor: str | None = Field(None, description="pass as cursor for the executions and events left out")

    EXCLUDED = _merge(_rows("executions.*", ExecutionRow), _rows("events.*", EventSummary))
    DROP_ORDER = (
        *item_paths("executions.*", _EXECUTION_HEAVY),
        "events.*.data",
        *_execution_drops("executions.*"),
        *item_paths("events.*", EventSummary.DROPS[1:]),
    )
    TRIM = ("events", "executions")
    # Factories, not tuple defaults: pydantic deep-copies a tuple default for every answer it builds.
    _start: tuple[int, int] = PrivateAttr(default_factory=lambda: (0, 0))
    _bound: tuple[int, int] = PrivateAttr(default_factory=lambda: (0, 0))  # the first page's last seqs
    _newer: int = PrivateAttr(default=0)  # recorded after the first page, left out of its pages

    @classmethod
    def of(cls, view: TraceView, shape: Shape = STANDARD, cursor: str | None = None) -> Self:
        """The answer from the start, or from where `cursor` (a page's next_cursor) left off. A cursor
        holds offsets into the trace as its first page saw it (items up to that page's last seqs),
        so what is recorded meanwhile, which may sort in anywhere, shifts nothing."""
        if cursor:
            *start, run_bound, event_bound = decode_offsets(cursor, view.trace_id, 4)
        else:
            start = [0, 0]
            run_bound, event_bound = max(view.execution_seqs, default=0), max(view.event_seqs, default=0)
        all_runs = _up_to(view.executions, view.execution_seqs, run_bound)
        all_events = _up_to(view.events, view.event_seqs, event_bound)
        if start[0] > len(all_runs) or start[1] > len(all_events):
            raise InvalidInput(
                "cursor",
                f"points past the end of trace {view.trace_id}, which no cursor of its answers does",
                hint="Pass next_cursor from the previous answer unchanged, or omit cursor.",
            )
        runs, events = all_runs[start[0] :], all_events[start[1] :]
        # A later page tells the trace as its first page saw it, its items and its outcome alike.
        retry_count, final_status = (
            trace_outcome(all_runs) if cursor else (view.retry_count, view.final_status)
        )
        answer = cls(
            **view.model_dump(include={"trace_id", "found"}),
            retry_count=retry_count,
            final_status=final_status,
            executions=[ExecutionRow.of(e, shape) for e in runs],
            events=[EventSummary.of(ev, shape) for ev in events],
            returned=len(runs) + len(events),
            total=len(all_runs) + len(all_events),
            detail=shape.detail,
        )
        answer._start, answer._bound = (start[0], start[1]), (run_bound, event_bound)
        answer._newer = len(view.executions) + len(view.events) - answer.total
        settled = answer.settled(shape.clipped)
        if settled.truncated or not settled._newer:
            return settled
        return settled.model_copy(update={"rest": settled._newer_hint()})  # all shown, but of the old view

    def _newer_hint(self) -> str | None:
        if not self._newer:
            return None
        return (
            f"{plural(self._newer, 'item')} recorded under the trace since its first page "
            "are left out of these pages: call tasks_by_trace without cursor to see them."
        )

    def trimmed(self, name: str, keep: int) -> Self:
        cut = super().trimmed(name, keep)
        position = (self._start[0] + len(cut.executions), self._start[1] + len(cut.events))
        next_cursor = encode_offsets(self.trace_id, *position, *self._bound)
        return cut.model_copy(
            update={"returned": len(cut.executions) + len(cut.events), "next_cursor": next_cursor}
        )

    def rest_hint(self) -> str | None:
        hints = []
        if self.omitted:
            hints.append("The rest of the trace: call tasks_by_trace again with cursor=next_cursor.")
        if newer := self._newer_hint():
            hints.append(newer)
        if self.dropped_fields or self.clipped_fields:
            hints.append(f"One execution in full: tasks_get(span_id) or {EXECUTION_URI}.")
        hints += whole_event_hint(self)
        whole = resource_uri(TRACE_URI, trace_id=self.trace_id)
        hints.append(f"The whole trace as one attachment: the resource {whole}.")
        return " ".join(hints)

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
        return "\n".join([*parts, *cut_note(self)])


# ---- tasks_last_failed -------------------------------------------------------------------


class FailureSummary(ExecutionRow):
    recent_events: list[EventSummary] = Field(
        default_factory=list, description="the task's last events up to the failure"
    )

    @classmethod
    def of_failure(cls, failure: Failure, shape: Shape = STANDARD) -> Self:
        events = [EventSummary.of(e, shape, "failures[].recent_events[]") for e in failure.recent_events]
        return cls.of(failure.execution, shape, "failures[]", recent_events=events)

    def line(self) -> str:
        events = ", ".join(e.event_type for e in self.recent_events[-5:])
        return super().line() + (f"\n    last events: {events}" if events else "")


class ErrorPatternSummary(Part):
    stack_hash: str
    count: int
    first_seen: datetime | None = None
    last_seen: datetime
    error_type: str
    error_message: str
    example_task_id: str | None = None
    example_trace_id: str
    example_span_id: str | None = None

    EXCLUDED: ClassVar[dict[str, tuple[str, ...]]] = {
        "summary": ("first_seen", "example_task_id", "example_span_id")
    }
    DROPS: ClassVar[tuple[str, ...]] = ("example_span_id", "example_task_id", "first_seen")

    @classmethod
    def of(cls, pattern: ErrorPattern, shape: Shape = STANDARD) -> Self:
        message = shape.text(
            pattern.error_message, "message", "error_patterns[].error_message", one_line=True
        )
        return cls(**pattern.model_dump(exclude={"error_message"}), error_message=message or "")

    def line(self) -> str:
        return (
            f"- {self.count}x {self.error_type}: {clip(self.error_message, 100)} "
            f"(stack_hash {self.stack_hash}; "
            f"{when(self.first_seen)} .. {when(self.last_seen)}; e.g. trace_id={self.example_trace_id})"
        )


class LastFailedResult(Sized):
    failures: list[FailureSummary] = Field(description="most recent first")
    error_patterns: list[ErrorPatternSummary] = Field(
        description="over every failure in the window, commonest first"
    )
    total_failures: int = Field(description="failures in the window, not just the ones returned")
    has_more: bool
    returned: int = Field(0, description="failures in this answer")
    total: int = Field(0, description="failures in the window (same as total_failures)")
    patterns_total: int = Field(0, description="distinct stack_hash groups in the window")
    next_cursor: str | None = Field(
        None, description="pass as cursor (same arguments) for the failures after these"
    )
    stale_running: int | None = Field(
        None,
        description="executions in the window with no end recorded that started over an hour ago "
        "(killed or hung runs never show up as failures)",
    )

    EXCLUDED = _merge(
        _rows("failures.*", ExecutionRow),
        _rows("failures.*.recent_events.*", EventSummary),
        _rows("error_patterns.*", ErrorPatternSummary),
        # A failure's recent events share its task and trace; their own ids are in tasks_by_trace.
        {
            d: item_paths("failures.*.recent_events.*", ("event_id", "task_id", "trace_id"))
            for d in ("standard",)
        },
    )
    DROP_ORDER = (
        "failures.*.recent_events.*.data",
        *item_paths("failures.*", _EXECUTION_HEAVY),
        "failures.*.recent_events",
        *_execution_drops("failures.*"),
        *item_paths("error_patterns.*", ErrorPatternSummary.DROPS),
    )
    # At least one failure stays: the error patterns (and their fields) go before the last one.
    TRIM = (("failures", 1), "error_patterns", "failures")
    _window: str = PrivateAttr(default="")
    _older_left_out: bool = PrivateAttr(default=False)
    _call: str | None = PrivateAttr(default=None)
    _positions: list[tuple[int, int]] = PrivateAttr(default_factory=list)

    @classmethod
    def of(
        cls,
        view: LastFailed,
        shape: Shape = STANDARD,
        window: str = "",
        positions: list[tuple[int, int]] | None = None,
        call: str | None = None,
        stale_running: int | None = None,
    ) -> Self:
        """`positions` ((started_us, seq) of each failure) and `call` (what its cursor is bound to,
        `last_failed_call`) give the answer a next_cursor; without them it names an `until`."""
        answer = cls(
            failures=[FailureSummary.of_failure(f, shape) for f in view.failures],
            error_patterns=[ErrorPatternSummary.of(p, shape) for p in view.error_patterns],
            total_failures=view.total_failures,
            has_more=view.has_more,
            returned=len(view.failures),
            total=view.total_failures,
            patterns_total=view.patterns_total,
            stale_running=stale_running,
            detail=shape.detail,
        )
        answer._window = window
        if positions is not None and call is not None:
            answer._call, answer._positions = call, positions
        return answer.with_cursor().settled(shape.clipped)

    def with_cursor(self) -> Self:
        """With next_cursor after the last failure shown, when there are more."""
        cursor = None
        if self.has_more and self.failures and self._call is not None:
            cursor = encode_offsets(self._call, *self._positions[len(self.failures) - 1])
        return self.model_copy(update={"next_cursor": cursor})

    def trimmed(self, name: str, keep: int) -> Self:
        cut = super().trimmed(name, keep)
        older = name == "failures" and keep < len(self.failures)
        cut = cut.model_copy(update={"returned": len(cut.failures), "has_more": cut.has_more or older})
        cut._older_left_out = self._older_left_out or older
        return cut.with_cursor()

    def older_call(self) -> str | None:
        """The call that returns the failures after the last one shown."""
        if self.next_cursor:
            return f'tasks_last_failed with the same arguments and cursor="{self.next_cursor}"'
        if not self.failures:
            return None
        until = self.failures[-1].started_at.isoformat()
        return f"tasks_last_failed({self._window}until='{until}')"

    def rest_hint(self) -> str | None:
        hints = []
        if self._older_left_out and self.next_cursor:
            hints.append(
                "Older failures: call tasks_last_failed again with the same arguments and cursor=next_cursor."
            )
        elif self._older_left_out and self.failures:
            hints.append(f"Older failures: {self.older_call()}.")
        elif self._older_left_out:
            fewer = " or detail='summary'" if self.detail != "summary" else ""
            hints.append(f"Not even one failure fits this max_tokens: raise max_tokens{fewer}.")
        if self._older_left_out and self.failures and self.detail != "summary":
            hints.append("detail='summary' fits more failures per answer.")
        if self.omitted and len(self.error_patterns) < min(self.patterns_total, PATTERNS_SHOWN):
            hints.append("Every error group, page by page: tasks_failure_patterns.")
        if self.dropped_fields or self.clipped_fields:
            hints.append(f"A failure in full: tasks_get(span_id) or {EXECUTION_URI}.")
        hints += whole_event_hint(self)
        return " ".join(hints) or None

    def render(self) -> str:
        stale = [self.stale_line()] if self.stale_running else []
        if not self.failures and not self.omitted:
            return "\n".join(["No failed executions in this window.", *stale])
        head = f"{len(self.failures)} most recent of {plural(self.total_failures, 'failure')}."
        call = self.older_call() if self.has_more else None
        if call:
            head += f" Older ones: {call}."
        parts = [head, *_lines(self.failures, "failures")]
        parts += [self.patterns_head(), *_lines(self.error_patterns, "patterns", limit=TEXT_ROWS // 2)]
        parts += stale
        parts.append("Next: tasks_by_trace(trace_id) shows a failure's whole story.")
        return "\n".join([*parts, *cut_note(self)])

    def patterns_head(self) -> str:
        """The patterns' heading; it says so when they are the commonest few of more groups."""
        if self.patterns_total <= len(self.error_patterns):
            return "Error patterns:"
        return (
            f"Error patterns (the {len(self.error_patterns)} commonest of {self.patterns_total:,} groups; "
            "every group, with trends: tasks_failure_patterns):"
        )

    def stale_line(self) -> str:
        n = self.stale_running or 0
        runs = "execution has" if n == 1 else "executions have"
        cutoff = (datetime.now(UTC) - STALE_AFTER).replace(microsecond=0).isoformat()
        return (
            f"Also: {n} {runs} had no end recorded for over an hour (killed or hung? they are not "
            f"counted as failures): tasks_list(status='running', {self._window}until='{cutoff}')."
        )


def last_failed_call(
    task_id: str | None, since: datetime | None, until: datetime | None, unique_errors: bool
) -> str:
    """What a tasks_last_failed cursor is bound to: the window and the kind of list it pages."""
    window = [task_id, since and since.isoformat(), until and until.isoformat(), unique_errors]
    return f"last_failed|{window}"


# ---- tasks_get ---------------------------------------------------------------------------

_S = "document.content.structured"


class ExecutionDocument(Sized):
    document: dict[str, Any] = Field(description="the seed 002 TASK_EXECUTION experience document")
    events: list[EventSummary] = Field(description="this execution's lifecycle events, in time order")
    returned: int = Field(0, description="events in this answer")
    total: int = Field(0, description="events recorded for this execution")

    EXCLUDED = _merge(
        {
            "summary": (
                "document.content.text",
                f"{_S}.result",
                f"{_S}.error.stack",
                f"{_S}.retrieval",
                f"{_S}.io",
                f"{_S}.attributes",
                f"{_S}.provenance_runner",
                f"{_S}.grants",
                f"{_S}.task_config_digest",
                "document.provenance",
                "document.parents",
                "document.causes",
            )
        },
        _rows("events.*", EventSummary),
    )
    DROP_ORDER = (
        f"{_S}.error.stack",
        "document.content.text",
        f"{_S}.result",
        "events.*.data",
        f"{_S}.attributes",
        f"{_S}.retrieval",
        f"{_S}.io",
        "document.parents",
        "document.causes",
        f"{_S}.provenance_runner",
        f"{_S}.grants",
        "document.provenance",
        f"{_S}.usage",
        "document.meta",
        f"{_S}.task_config_digest",
        f"{_S}.idempotency_key",
        *item_paths("events.*", EventSummary.DROPS[1:]),
    )
    TRIM = ("events",)
    TRIMMED_LISTS_ARE_ITS_ITEMS = False  # the document is the item; its events may all go

    @classmethod
    def of(cls, detail: ExecutionDetail, document: dict[str, Any], shape: Shape = STANDARD) -> Self:
        events = [EventSummary.of(e, shape) for e in detail.events]
        clipped = _clip_document(document, shape)
        return cls(
            document=clipped, events=events, returned=len(events), total=len(events), detail=shape.detail
        ).settled(shape.clipped)

    def trimmed(self, name: str, keep: int) -> Self:
        return super().trimmed(name, keep).model_copy(update={"returned": keep})

    def rest_hint(self) -> str | None:
        s = self.document["content"]["structured"]
        hints = [f"The whole record: the resource {resource_uri(EXECUTION_URI, span_id=s['span_id'])}."]
        if self.omitted:
            hints.append(f"Its events with the trace's: tasks_by_trace(trace_id='{s['trace_id']}').")
        return " ".join(hints)

    def render(self) -> str:
        s = self.document["content"]["structured"]
        head = f"Execution {self.document['id']} of {s['task_id']}, attempt {s['attempt']}: {s['status']}"
        took = duration(s["duration_ms"]) if s["duration_ms"] is not None else "-"
        if s["status"] == "running" and s["duration_ms"] is None and s.get("started_at_iso"):
            took = no_end(datetime.fromisoformat(s["started_at_iso"]))
        parts = [
            f"{head} ({took}).",
            f"trace_id={s['trace_id']} span_id={s['span_id']}",
        ]
        if s.get("error"):
            error = s["error"]
            parts.append(
                f"error: {error['type']}: {clip(error['message'], 300)} (stack_hash {error['stack_hash']})"
            )
        if not self.events and not self.omitted:
            parts.append("No lifecycle events are recorded for this execution.")
        elif self.events:
            parts += [f"{plural(len(self.events), 'event')}:", *_lines(self.events, "events")]
        return "\n".join([*parts, *cut_note(self)])


def _clip_document(document: dict[str, Any], shape: Shape) -> dict[str, Any]:
    """The document with its free text cut to the detail's caps (a copy; the caller's is kept)."""
    content = dict(document["content"])
    structured = dict(content["structured"])
    shown_text = shape.detail != "summary"
    if shown_text:
        content["text"] = shape.text(content.get("text"), "result", "document.content.text")
        structured["result"] = shape.text(structured.get("result"), "result", f"{_S}.result")
    if structured.get("error"):
        error = dict(structured["error"])
        error["message"] = shape.text(error.get("message"), "message", f"{_S}.error.message")
        if shown_text:
            error["stack"] = shape.text(error.get("stack"), "stack", f"{_S}.error.stack")
        structured["error"] = error
    content["structured"] = structured
    return {**document, "content": content}
