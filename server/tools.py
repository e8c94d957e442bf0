"""The MCP tools: thin typed wrappers, each calling one `Store` method (the debugging tools are in
`server.tools_debug`).

Parameters are `server.params` types, so the input schema tells a model what is allowed before it calls.
The return annotation `Annotated[CallToolResult, Model]` makes the SDK publish `Model` as the output schema
and validate the structured content against it, while the text block is our short rendering rather than
the SDK's default JSON dump. Failures are not handled here: `server.app` translates them in one place.
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult

from server.budget import DEFAULT_MAX_TOKENS, fit_shaped
from server.params import (
    Actor,
    ActorFilter,
    Attributes,
    Backfilled,
    Causes,
    Cursor,
    DetailArg,
    EndedAt,
    ErrorArg,
    EventData,
    EventId,
    EventSpan,
    EventTime,
    EventTrace,
    EventType,
    IdempotencyKey,
    IOArg,
    ListLimit,
    MaxTokens,
    NewTraceId,
    Parents,
    ParentSpan,
    RecordedStart,
    ResultText,
    RetrievalArg,
    Retrying,
    RetryOf,
    ScheduledAt,
    Since,
    SpanId,
    StartedAt,
    Status,
    StatusFilter,
    TaskFilter,
    TaskId,
    TaskName,
    TaskType,
    TaskTypeFilter,
    TraceCursor,
    TraceId,
    Trigger,
    Until,
    UsageArg,
)
from server.receipts import EventLogged, Finished, Recorded, Started
from server.results import ExecutionDocument, ExecutionList, TraceResult
from server.toolkit import READ_ONLY, WRITE, WRITE_IDEMPOTENT, ToolSpec
from server.toolkit import reply as _reply
from server.toolkit import reply_fitted as _reply_fitted
from server.toolkit import store_of as _store
from server.tools_debug import DEBUG_TOOLS, tasks_last_failed
from store.experience import to_document
from store.models import EventRequest, ExecutionFilter, FinishRequest, RecordRequest, StartRequest


def _given(arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments the caller gave (from `locals()`): the store's request models own the defaults."""
    return {name: value for name, value in arguments.items() if value is not None and name != "ctx"}


# ---- read tools ------------------------------------------------------------------------


async def tasks_list(
    ctx: Context,
    task_id: TaskFilter = None,
    status: StatusFilter = None,
    task_type: TaskTypeFilter = None,
    actor: ActorFilter = None,
    since: Since = None,
    until: Until = None,
    backfilled: Backfilled = None,
    retrying: Retrying = None,
    limit: ListLimit = 20,
    cursor: Cursor = None,
    detail: DetailArg = "standard",
    max_tokens: MaxTokens = DEFAULT_MAX_TOKENS,
) -> Annotated[CallToolResult, ExecutionList]:
    """List task executions, newest first, with filters. Says how many match and how to get the next page."""
    given = _given(locals())
    filters = ExecutionFilter(**{k: v for k, v in given.items() if k in ExecutionFilter.model_fields})
    page = await _store(ctx).list_executions(filters, limit=limit, cursor=cursor)
    fitted = fit_shaped(lambda shape: ExecutionList.of(page, shape), detail, max_tokens)
    answer = fitted.answer
    if isinstance(answer, ExecutionList) and answer.omitted and answer.returned:
        # The budget kept the first rows of the page: the next page starts right after them.
        fitted = fitted.redone(answer.model_copy(update={"next_cursor": page.cursor_after(answer.returned)}))
    return _reply_fitted(fitted)


async def tasks_by_trace(
    ctx: Context,
    trace_id: TraceId,
    cursor: TraceCursor = None,
    detail: DetailArg = "standard",
    max_tokens: MaxTokens = DEFAULT_MAX_TOKENS,
) -> Annotated[CallToolResult, TraceResult]:
    """Everything under one trace: executions by attempt (retries, worker children), events, final status.
    An unknown trace_id is an empty answer with found=false, not an error."""
    view = await _store(ctx).trace(trace_id)
    return _reply_fitted(fit_shaped(lambda shape: TraceResult.of(view, shape, cursor), detail, max_tokens))


async def tasks_get(
    ctx: Context, span_id: SpanId, detail: DetailArg = "full", max_tokens: MaxTokens = DEFAULT_MAX_TOKENS
) -> Annotated[CallToolResult, ExecutionDocument]:
    """One execution in full: the seed 002 TASK_EXECUTION experience document, with its events. Long
    text is clipped to fit; the resource task-history://execution/{span_id} has all of it."""
    record = await _store(ctx).get(span_id)
    document = to_document(record.execution)
    fitted = fit_shaped(lambda shape: ExecutionDocument.of(record, document, shape), detail, max_tokens)
    return _reply_fitted(fitted)


# ---- write tools -----------------------------------------------------------------------


async def tasks_start(
    ctx: Context,
    task_id: TaskId,
    task_name: TaskName = None,
    task_type: TaskType = None,
    trigger: Trigger = None,
    actor: Actor = None,
    trace_id: NewTraceId = None,
    parent_span_id: ParentSpan = None,
    retry_of: RetryOf = None,
    idempotency_key: IdempotencyKey = None,
    scheduled_at: ScheduledAt = None,
    started_at: StartedAt = None,
    retrieval: RetrievalArg = None,
    parents: Parents = None,
    causes: Causes = None,
    attributes: Attributes = None,
) -> Annotated[CallToolResult, Started]:
    """Record that an execution started; returns its span_id for tasks_finish. Retries: pass retry_of."""
    return _reply(Started.of(await _store(ctx).start(StartRequest(**_given(locals())))))


async def tasks_finish(
    ctx: Context,
    span_id: SpanId,
    status: Status,
    error: ErrorArg = None,
    result: ResultText = None,
    io: IOArg = None,
    usage: UsageArg = None,
    ended_at: EndedAt = None,
) -> Annotated[CallToolResult, Finished]:
    """Record how a running execution ended; returns its duration_ms and the error's stack_hash."""
    return _reply(Finished.of_result(await _store(ctx).finish(FinishRequest(**_given(locals())))))


async def tasks_log_event(
    ctx: Context,
    event_type: EventType,
    task_id: TaskId,
    span_id: EventSpan = None,
    trace_id: EventTrace = None,
    actor: Actor = None,
    data: EventData = None,
    ts: EventTime = None,
    event_id: EventId = None,
) -> Annotated[CallToolResult, EventLogged]:
    """Append a task lifecycle event (seed 000's 18 types). task_started, worker_* and
    task_completed/failed open and close executions; returns the task's state after it and any anomaly."""
    return _reply(EventLogged.of(await _store(ctx).log_event(EventRequest(**_given(locals())))))


async def tasks_record(
    ctx: Context,
    task_id: TaskId,
    status: Status,
    started_at: RecordedStart,
    ended_at: EndedAt = None,
    error: ErrorArg = None,
    result: ResultText = None,
    io: IOArg = None,
    usage: UsageArg = None,
    task_name: TaskName = None,
    task_type: TaskType = None,
    trigger: Trigger = None,
    actor: Actor = None,
    trace_id: NewTraceId = None,
    parent_span_id: ParentSpan = None,
    retry_of: RetryOf = None,
    idempotency_key: IdempotencyKey = None,
    scheduled_at: ScheduledAt = None,
    retrieval: RetrievalArg = None,
    parents: Parents = None,
    causes: Causes = None,
    attributes: Attributes = None,
) -> Annotated[CallToolResult, Recorded]:
    """Record one complete execution after the fact (start and finish in one call). Idempotent: the same
    task_id + started_at (or idempotency_key) again returns the first record, marked duplicate."""
    return _reply(Recorded.of_start(await _store(ctx).record(RecordRequest(**_given(locals())))))


# ---- registration ----------------------------------------------------------------------


READ_TOOLS = (
    ToolSpec(tasks_list, READ_ONLY, "List task executions"),
    ToolSpec(tasks_by_trace, READ_ONLY, "Show one trace"),
    ToolSpec(tasks_last_failed, READ_ONLY, "Recent failures and error patterns"),
    ToolSpec(tasks_get, READ_ONLY, "One execution in full"),
    *DEBUG_TOOLS,
)
WRITE_TOOLS = (
    # Not idempotent as annotated: without a key or scheduled_at, each call opens a new execution, and a
    # client that retries "idempotent" tools on its own would duplicate runs.
    ToolSpec(tasks_start, WRITE, "Record an execution start"),
    ToolSpec(tasks_finish, WRITE_IDEMPOTENT, "Record an execution's outcome"),
    ToolSpec(tasks_log_event, WRITE, "Log a lifecycle event"),
    ToolSpec(tasks_record, WRITE_IDEMPOTENT, "Record a whole execution"),
)


def tools_for(read_only: bool) -> tuple[ToolSpec, ...]:
    return READ_TOOLS if read_only else READ_TOOLS + WRITE_TOOLS


def register(server: MCPServer[Any], specs: tuple[ToolSpec, ...]) -> dict[str, frozenset[str]]:
    """Add `specs` to `server`; returns each tool's accepted argument names."""
    for spec in specs:
        server.add_tool(spec.fn, title=spec.title, annotations=spec.annotations)
    return {spec.name: spec.arguments for spec in specs}
