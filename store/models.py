"""The store's domain models: what callers send (requests), what is stored (records) and
what queries return (views). Pure pydantic, no I/O. Field names follow seed 002's execution
record; the 18 lifecycle event types follow seed 000; task states follow seed 004."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, PrivateAttr

ExecutionStatus = Literal["running", "success", "failed", "partial", "cancelled"]
FinalStatus = Literal["success", "failed", "partial", "cancelled"]
Trigger = Literal["scheduled", "manual"]
TaskState = Literal[
    "pending", "assigned", "in_progress", "blocked", "completed", "failed", "cancelled", "escalated"
]

_MIN_YEAR, _MAX_YEAR = 1970, 2200


def _plausible(moment: datetime) -> datetime:
    if not _MIN_YEAR <= moment.year <= _MAX_YEAR:
        raise ValueError(f"year {moment.year} is outside {_MIN_YEAR}..{_MAX_YEAR}")
    return moment.astimezone(UTC)


Timestamp = Annotated[AwareDatetime, AfterValidator(_plausible)]
"""A timezone-aware instant (naive times are refused: their zone would be a guess), kept in UTC."""

Identifier = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
"""A printable name or id: task ids, actors, slugs, span ids given by callers."""

ShortText = Annotated[str, Field(max_length=500)]

INT64_MAX = 2**63 - 1
Count = Annotated[int, Field(ge=0, le=INT64_MAX)]
"""A count a database column holds: SQLite and PostgreSQL integers are 64-bit."""

USAGE_MAX = 10**12
"""The most tokens (or cost) one run records, and counts in statistics: a trillion. The sums
tasks_stats reports then fit 64 bits for any history (9 million runs at the cap in one group):
SQLite's SUM stops with an error past 2**63 where PostgreSQL's goes on, and two runs of 2**62 tokens
each once made every statistics call fail. Checked on the write path (store.rules) and clamped in
the sums, so a record stored before the cap still reads and counts (as the cap)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorInput(_Model):
    """What a caller says about a failure; the store adds stack_hash."""

    type: Annotated[str, Field(min_length=1, max_length=300, description="exception class, e.g. KeyError")]
    message: Annotated[str, Field(min_length=1, description="the error message")]
    stack: str | None = Field(default=None, description="the traceback text, if any")


class ErrorInfo(_Model):
    type: str
    message: str
    stack: str | None = None
    stack_hash: str


class Retrieval(_Model):
    """Which memories informed the execution (seed 002 retrieval provenance)."""

    memory_count: Annotated[int, Field(ge=0, le=1_000_000)] | None = Field(
        default=None, description="how many memories were retrieved; must equal len(parents) when given"
    )
    query: str | None = Field(default=None, description="the retrieval query text")
    filters: dict[str, Any] | None = Field(default=None, description="the filters it used, as JSON")
    latency_ms: Count | None = Field(default=None, description="how long it took")
    source: list[ShortText] = Field(default_factory=list, description="where from, e.g. experiences")


class IOEffects(_Model):
    """Side effects of the execution."""

    files_written: list[ShortText] = Field(default_factory=list)
    artifact_ids: list[ShortText] = Field(default_factory=list)
    tool_calls: list[ShortText] = Field(default_factory=list)
    script_runs: list[ShortText] = Field(default_factory=list)


class Usage(_Model):
    """Model usage of the execution (OpenTelemetry gen_ai.usage.*)."""

    input_tokens: Count | None = Field(default=None, description="prompt tokens")
    output_tokens: Count | None = Field(default=None, description="completion tokens")
    cost: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = Field(
        default=None, description="in the caller's currency"
    )


class ProvenanceRunner(_Model):
    name: ShortText | None = None
    version: ShortText | None = None
    pid: Count | None = None
    host: ShortText | None = None


class StartRequest(_Model):
    """Open one execution (one attempt of one task)."""

    task_id: Identifier
    task_name: ShortText | None = None
    task_slug: Identifier | None = None
    task_type: Identifier | None = None
    trigger: Trigger = "manual"
    actor: Identifier | None = None
    trace_id: str | None = None
    span_id: str | None = None
    parent_span_id: Identifier | None = None
    retry_of: Identifier | None = None
    idempotency_key: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    scheduled_at: Timestamp | None = None
    started_at: Timestamp | None = None
    retrieval: Retrieval | None = None
    parents: list[Identifier] = Field(default_factory=list)
    causes: list[Identifier] = Field(default_factory=list)
    attributes: dict[str, Any] = Field(default_factory=dict)
    task_config_digest: ShortText | None = None
    provenance_runner: ProvenanceRunner | None = None


class FinishRequest(_Model):
    """Close a running execution with its outcome."""

    span_id: Identifier
    status: FinalStatus
    error: ErrorInput | None = None
    result: str | None = None
    io: IOEffects | None = None
    usage: Usage | None = None
    ended_at: Timestamp | None = None


class RecordRequest(StartRequest):
    """One complete execution in one call, for after-the-fact recording."""

    started_at: Timestamp
    status: FinalStatus
    ended_at: Timestamp | None = None
    error: ErrorInput | None = None
    result: str | None = None
    io: IOEffects | None = None
    usage: Usage | None = None


class Execution(_Model):
    """One stored execution: every field of seed 002's concrete field contract."""

    execution_id: str
    task_id: str
    task_slug: str
    task_name: str | None = None
    task_type: str | None = None
    trigger: Trigger = "manual"
    actor: str | None = None
    worker_id: str | None = None
    trace_id: str
    span_id: str
    parent_span_id: str | None = None
    attempt: int = 1
    retry_of: str | None = None
    idempotency_key: str | None = None
    status: ExecutionStatus
    started_at: datetime
    ended_at: datetime | None = None
    duration_ms: int | None = None
    scheduled_at: datetime | None = None
    error: ErrorInfo | None = None
    retrieval: Retrieval = Field(default_factory=Retrieval)
    parents: list[str] = Field(default_factory=list)
    causes: list[str] = Field(default_factory=list)
    io: IOEffects = Field(default_factory=IOEffects)
    usage: Usage = Field(default_factory=Usage)
    result: str | None = None
    task_config_digest: str | None = None
    provenance_runner: ProvenanceRunner | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    backfilled: bool = False
    scrubbed: bool = False
    session_id: str
    created_at: datetime


class EventRequest(_Model):
    """Append one lifecycle event (seed 000) or a namespaced custom event."""

    event_type: Annotated[str, Field(min_length=1, max_length=100)]
    task_id: Identifier
    span_id: Identifier | None = None
    trace_id: str | None = None
    actor: Identifier | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    ts: Timestamp | None = None
    event_id: Identifier | None = None
    backfilled: bool = Field(
        default=False,
        description="imported history (store.importers): the executions it opens are backfilled",
    )


class LifecycleEvent(_Model):
    event_id: str
    event_type: str
    task_id: str
    trace_id: str | None = None
    span_id: str | None = None
    actor: str | None = None
    ts: datetime
    data: dict[str, Any] = Field(default_factory=dict)
    anomaly: str | None = None
    recorded_at: datetime


class TaskNote(_Model):
    timestamp: datetime
    note: str


class TaskStatus(_Model):
    """A task's state derived from its events and executions (seed 004)."""

    task_id: str
    state: TaskState
    attempts: int = 0
    assigned_to: str | None = None
    current_trace_id: str | None = None
    current_span_id: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    result: str | None = None
    updated_at: datetime
    notes: list[TaskNote] = Field(default_factory=list)


class StartResult(_Model):
    execution: Execution
    duplicate: bool = Field(description="true when an execution with this idempotency key already existed")


class FinishResult(_Model):
    execution: Execution
    already_finished: bool = Field(description="true when the same outcome had already been recorded")


class EventResult(_Model):
    event: LifecycleEvent
    task: TaskStatus
    duplicate: bool = False
    opened_span_id: str | None = None
    closed_span_id: str | None = None


class ExecutionFilter(_Model):
    task_id: Identifier | None = None
    status: ExecutionStatus | None = None
    task_type: Identifier | None = None
    actor: Identifier | None = None
    since: Timestamp | None = None
    until: Timestamp | None = None
    backfilled: bool | None = None
    retrying: bool | None = None


class KeysetPage(BaseModel):
    """A page read with a keyset cursor, which can also say where a page after only its first rows
    starts (a reader whose budget kept fewer rows): from the positions this read saw. Reading the
    shorter page again to learn it could see rows committed meanwhile, and repeated them."""

    _cursor_after: Callable[[int], str] | None = PrivateAttr(default=None)

    def cursor_after(self, count: int) -> str | None:
        """The cursor of the page that starts after this page's first `count` rows (None for 0: the
        caller's own cursor starts that page)."""
        if count <= 0 or self._cursor_after is None:
            return None
        return self._cursor_after(count)

    def with_cursor_after(self, encode: Callable[[int], str]) -> Self:
        self._cursor_after = encode
        return self


class ExecutionPage(_Model, KeysetPage):
    executions: list[Execution]
    total: int = Field(
        description="how many executions match the filters (a lower bound when total_exact is false)"
    )
    total_exact: bool
    returned: int
    has_more: bool
    next_cursor: str | None = None


class TraceView(_Model):
    trace_id: str
    found: bool
    executions: list[Execution]
    events: list[LifecycleEvent]
    retry_count: int
    final_status: ExecutionStatus | None = None
    # Each item's row number, in storage order: a paging cursor bounds its later pages by them, so
    # what is recorded meanwhile (an out-of-order event sorts in anywhere) cannot shift a page.
    execution_seqs: list[int] = Field(default_factory=list, exclude=True)
    event_seqs: list[int] = Field(default_factory=list, exclude=True)


class ErrorPattern(_Model):
    stack_hash: str
    count: int
    first_seen: datetime
    last_seen: datetime
    error_type: str
    error_message: str
    example_task_id: str
    example_trace_id: str
    example_span_id: str


class Failure(_Model):
    execution: Execution
    recent_events: list[LifecycleEvent]


# What one last_failed answer shows. Sized so that tasks_last_failed's default answer (10 failures)
# fits the default 8,000-token budget whole: with 5 events a failure and 20 patterns it came to
# ~10,600 tokens and was cut on the commonest call of all. The rest is one call away:
# tasks_by_trace has every event of a failure's trace, tasks_failure_patterns every group.
RECENT_EVENTS_SHOWN = 3
PATTERNS_SHOWN = 10


class LastFailed(_Model):
    failures: list[Failure]
    error_patterns: list[ErrorPattern]
    total_failures: int = Field(description="failures in the window (all of them, not just this page)")
    patterns_total: int = Field(description="distinct stack_hash groups in the window")
    has_more: bool


class ExecutionDetail(_Model):
    execution: Execution
    events: list[LifecycleEvent]


class TaskTimeline(_Model):
    """One task's story: its state, its executions and its events, oldest first."""

    task_id: str
    task: TaskStatus | None
    executions: list[Execution]
    events: list[LifecycleEvent]
    executions_total: int
    events_total: int
    truncated: bool = Field(description="true when only the most recent executions/events are included")
