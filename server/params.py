"""The tools' parameter types: `Annotated` types carrying a description and bounds, so the input schema
a client sees says what is allowed before it calls. Written once here because several tools share them
(tasks_record takes every argument of tasks_start and tasks_finish)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from server.budget import MAX_TOKENS_LIMIT, MIN_MAX_TOKENS
from store.analysis import EFFECTS_LIMIT_MAX, PATTERNS_LIMIT_MAX, STATS_GROUPS_MAX
from store.models import ErrorInput, Identifier, IOEffects, Retrieval, Timestamp, Usage
from store.store import FAILED_LIMIT_MAX, LIST_LIMIT_MAX

_TS = "ISO 8601 with offset, e.g. 2025-11-04T18:29:12Z"

# ---- read tools ------------------------------------------------------------------------

TaskFilter = Annotated[Identifier | None, Field(description="only this task's executions")]
StatusFilter = Annotated[
    Literal["running", "success", "failed", "partial", "cancelled"] | None,
    Field(description="only this status"),
]
TaskTypeFilter = Annotated[Identifier | None, Field(description="only this task_type, e.g. reflection")]
ActorFilter = Annotated[Identifier | None, Field(description="only executions started by this actor")]
Since = Annotated[Timestamp | None, Field(description=f"only executions started at or after this; {_TS}")]
Until = Annotated[Timestamp | None, Field(description=f"only executions started before this; {_TS}")]
Backfilled = Annotated[bool | None, Field(description="true: only imported history; false: only live runs")]
Retrying = Annotated[
    bool | None, Field(description="true: only retries still running (attempt > 1); false: all the others")
]
ListLimit = Annotated[int, Field(ge=1, le=LIST_LIMIT_MAX, description="page size")]
Cursor = Annotated[
    str | None, Field(max_length=1000, description="next_cursor of the previous page, unchanged")
]
FailedLimit = Annotated[
    int, Field(ge=1, le=FAILED_LIMIT_MAX, description="how many recent failures to return")
]
UniqueErrors = Annotated[bool, Field(description="one failure per distinct error (stack_hash)")]
TraceId = Annotated[str, Field(min_length=1, max_length=100, description="a trace_id (UUIDv4)")]
SpanId = Annotated[Identifier, Field(description="an execution's span_id (tasks_start returns it)")]
DetailArg = Annotated[
    Literal["summary", "standard", "full"],
    Field(description="fields per record: summary = ids, status, error, timing; full adds stacks, results"),
]
MaxTokens = Annotated[
    int,
    Field(
        ge=MIN_MAX_TOKENS,
        le=MAX_TOKENS_LIMIT,
        description="answer budget; over it fields, then items, are left out (and named)",
    ),
]  # fmt: skip
TraceCursor = Annotated[
    str | None, Field(max_length=1000, description="next_cursor of the previous answer, unchanged")
]

# ---- write tools -----------------------------------------------------------------------

TaskId = Annotated[Identifier, Field(description="the task's stable id, e.g. daily_reflection or task-001")]
TaskName = Annotated[str | None, Field(max_length=500, description="human-readable task name")]
TaskType = Annotated[Identifier | None, Field(description="reflection | assessment | ingest | custom | ...")]
Trigger = Annotated[
    Literal["scheduled", "manual"] | None, Field(description="how it started (default manual)")
]
Actor = Annotated[Identifier | None, Field(description="who runs it: an agent, master or scheduler name")]
NewTraceId = Annotated[
    str | None, Field(max_length=100, description="UUIDv4 of an existing trace to join; omit to start one")
]
ParentSpan = Annotated[
    Identifier | None, Field(description="span_id of the parent execution (joins its trace)")
]
RetryOf = Annotated[
    Identifier | None, Field(description="span_id of the failed attempt this retries (same trace, attempt+1)")
]
IdempotencyKey = Annotated[
    str | None, Field(min_length=1, max_length=200, description="the same key again returns the first run")
]
ScheduledAt = Annotated[Timestamp | None, Field(description=f"when it was scheduled; {_TS}")]
StartedAt = Annotated[Timestamp | None, Field(description=f"when it started (default now); {_TS}")]
RecordedStart = Annotated[Timestamp, Field(description=f"when it started (it identifies the run); {_TS}")]
EndedAt = Annotated[Timestamp | None, Field(description=f"when it ended (default now); {_TS}")]
RetrievalArg = Annotated[
    Retrieval | None, Field(description="which memories informed it (memory_count == len(parents))")
]
Parents = Annotated[list[Identifier] | None, Field(description="ids of the retrieved memories it used")]
Causes = Annotated[list[Identifier] | None, Field(description="ids of goals or prior tasks that caused it")]
Attributes = Annotated[dict[str, Any] | None, Field(description="free-form JSON attributes (size-limited)")]
Status = Annotated[
    Literal["success", "failed", "partial", "cancelled"], Field(description="the outcome; failed needs error")
]
ErrorArg = Annotated[
    ErrorInput | None, Field(description="required when status is failed: {type, message, stack?}")
]
ResultText = Annotated[str | None, Field(description="the task's response or a summary (PII is scrubbed)")]
IOArg = Annotated[
    IOEffects | None, Field(description="side effects: files_written, artifact_ids, tool_calls, script_runs")
]
UsageArg = Annotated[Usage | None, Field(description="token counts and cost")]

EventType = Annotated[
    str,
    Field(
        min_length=1,
        max_length=100,
        description="a lifecycle type (task_created ... handoff_completed) or a namespaced custom type "
        "such as myorg.deploy_finished",
    ),
]
EventSpan = Annotated[Identifier | None, Field(description="the execution it belongs to, if known")]
EventTrace = Annotated[str | None, Field(max_length=100, description="the trace it belongs to, if known")]
EventData = Annotated[
    dict[str, Any] | None,
    Field(
        description="details: worker events need worker_id (and worker_type), handoff events handoff_id, "
        "failures error {type, message, stack}"
    ),
]
EventTime = Annotated[Timestamp | None, Field(description=f"when it happened (default now); {_TS}")]
EventId = Annotated[Identifier | None, Field(description="your id for it; the same id again is a no-op")]

# ---- debugging tools (server.tools_debug) ------------------------------------------------

PatternsLimit = Annotated[
    int, Field(ge=1, le=PATTERNS_LIMIT_MAX, description="how many failure groups, commonest first")
]
GroupBy = Annotated[
    Literal["task_id", "task_type", "actor"] | None,
    Field(description="one row per task_id, task_type or actor"),
]
Workers = Annotated[
    bool, Field(description="true: child runs (workers, parent_span_id work) instead of the tasks' own runs")
]
GroupsLimit = Annotated[int, Field(ge=1, le=STATS_GROUPS_MAX, description="how many groups, most runs first")]
TimelineTask = Annotated[Identifier | None, Field(description="the task (give this or trace_id)")]
TimelineTrace = Annotated[str | None, Field(max_length=100, description="the trace (give this or task_id)")]
TimelineUntil = Annotated[
    Timestamp | None, Field(description=f"only steps before this (earlier pages); {_TS}")
]
FileArg = Annotated[
    str | None,
    Field(
        min_length=1,
        max_length=500,
        description="a file path written, or a directory ending in / (files under it)",
    ),
]
ToolCallArg = Annotated[
    str | None, Field(min_length=1, max_length=500, description="a tool name the run called")
]
EffectsLimit = Annotated[int, Field(ge=1, le=EFFECTS_LIMIT_MAX, description="page size")]
