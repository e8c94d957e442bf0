"""The debugging tools: failure groups, run statistics, a task's timeline, side-effect search.
Thin typed wrappers like server.tools: each calls one `Store` read and fits the answer to
`max_tokens` (server.budget); failures become tool errors in server.app."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult

from server.budget import DEFAULT_MAX_TOKENS, Shape, decode_offsets, fit_shaped
from server.params import (
    Cursor,
    DetailArg,
    EffectsLimit,
    FailedLimit,
    FileArg,
    GroupBy,
    GroupsLimit,
    MaxTokens,
    PatternsLimit,
    Since,
    TaskFilter,
    TaskTypeFilter,
    TimelineTask,
    TimelineTrace,
    TimelineUntil,
    ToolCallArg,
    TraceCursor,
    UniqueErrors,
    Until,
    Workers,
)
from server.results import LastFailedResult, last_failed_call
from server.results_debug import (
    FailurePatternsResult,
    SideEffectsResult,
    StatsResult,
    TimelineResult,
    timeline_position,
)
from server.toolkit import READ_ONLY, ToolSpec, reply_fitted, store_of
from store.analysis import STORY_LIMIT_MAX, timeline_steps
from store.errors import InvalidInput


def _described(**scope: Any) -> str:
    """`task_id='x', since='...'`: the filters a call was given, as a reader would type them."""
    shown = [
        f"{k}={v.isoformat() if isinstance(v, datetime) else v!r}" for k, v in scope.items() if v is not None
    ]
    return ", ".join(shown)


async def tasks_last_failed(
    ctx: Context,
    limit: FailedLimit = 10,
    task_id: TaskFilter = None,
    since: Since = None,
    until: Until = None,
    unique_errors: UniqueErrors = False,
    cursor: TraceCursor = None,
    detail: DetailArg = "standard",
    max_tokens: MaxTokens = DEFAULT_MAX_TOKENS,
) -> Annotated[CallToolResult, LastFailedResult]:
    """The most recent failed executions with their last events, plus error patterns (stack_hash, count,
    first/last seen, an example trace) over every failure in the window; next_cursor pages to older
    failures. Start debugging here."""
    call = last_failed_call(task_id, since, until, unique_errors)
    before = decode_offsets(cursor, call, 2) if cursor else None
    page = await store_of(ctx).failure_page(
        limit=limit, task_id=task_id, since=since, until=until, unique_errors=unique_errors, before=before
    )
    shown = _described(task_id=task_id, since=since)
    window = f"{shown}, " if shown else ""

    def build(shape: Shape) -> LastFailedResult:
        return LastFailedResult.of(
            page.view,
            shape,
            window=window,
            positions=page.positions,
            call=call,
            stale_running=page.stale_running,
        )

    return reply_fitted(fit_shaped(build, detail, max_tokens))


async def tasks_failure_patterns(
    ctx: Context,
    since: Since = None,
    until: Until = None,
    task_id: TaskFilter = None,
    limit: PatternsLimit = 10,
    cursor: TraceCursor = None,
    detail: DetailArg = "standard",
    max_tokens: MaxTokens = DEFAULT_MAX_TOKENS,
) -> Annotated[CallToolResult, FailurePatternsResult]:
    """Failures grouped by fingerprint (error type + normalized message + stack_hash), commonest first:
    count, first/last seen, tasks and actors affected, a trend, an example trace, and how many a later
    retry fixed. Use it after tasks_last_failed to see which failure matters most."""
    key = f"patterns|{_described(task_id=task_id, since=since, until=until)}"
    offset = decode_offsets(cursor, key, 1)[0] if cursor else 0
    view = await store_of(ctx).failure_patterns(
        task_id=task_id, since=since, until=until, limit=limit, offset=offset
    )
    return reply_fitted(
        fit_shaped(lambda shape: FailurePatternsResult.of(view, shape, key), detail, max_tokens)
    )


async def tasks_stats(
    ctx: Context,
    task_id: TaskFilter = None,
    task_type: TaskTypeFilter = None,
    since: Since = None,
    until: Until = None,
    group_by: GroupBy = None,
    workers: Workers = False,
    limit: GroupsLimit = 20,
    detail: DetailArg = "standard",
    max_tokens: MaxTokens = DEFAULT_MAX_TOKENS,
) -> Annotated[CallToolResult, StatsResult]:
    """Run statistics: runs, success/failed/partial counts and success rate, duration p50/p95/p99,
    retry rate and successes by attempt, token totals; overall or per task_id, task_type or actor."""
    view = await store_of(ctx).stats(
        task_id=task_id,
        task_type=task_type,
        since=since,
        until=until,
        group_by=group_by,
        workers=workers,
        limit=limit,
    )
    runs = "child runs (workers and other child work)" if workers else "task runs (child runs excluded)"
    scope = ", ".join(
        filter(None, [_described(task_id=task_id, task_type=task_type, since=since, until=until), runs])
    )
    return reply_fitted(
        fit_shaped(lambda shape: StatsResult.of(view, shape, scope, group_by), detail, max_tokens)
    )


async def tasks_timeline(
    ctx: Context,
    task_id: TimelineTask = None,
    trace_id: TimelineTrace = None,
    until: TimelineUntil = None,
    cursor: TraceCursor = None,
    detail: DetailArg = "standard",
    max_tokens: MaxTokens = DEFAULT_MAX_TOKENS,
) -> Annotated[CallToolResult, TimelineResult]:
    """One task's (or one trace's) story in time order: lifecycle events, runs and retries, workers,
    handoffs and files written, with the time between steps. The most recent steps when it is long;
    next_cursor pages back."""
    before = timeline_position(cursor, task_id, trace_id) if cursor else None
    story = await store_of(ctx).story(
        task_id=task_id, trace_id=trace_id, until=until, before=before, limit=_steps_that_fit(max_tokens)
    )
    steps, total = timeline_steps(story), story.executions_total + story.events_total
    fitted = fit_shaped(
        lambda shape: TimelineResult.of(steps, shape, task_id, story.trace_id, total, story.totals_exact),
        detail,
        max_tokens,
    )
    return reply_fitted(fitted)


# No step renders in fewer tokens than this (the smallest seen is about 60), so reading more rows of
# each kind than max_tokens / this can only build models the budget then drops: that model building,
# not the SQL, was most of a long timeline's cost.
_MIN_STEP_TOKENS = 40


def _steps_that_fit(max_tokens: int) -> int:
    return min(STORY_LIMIT_MAX, max_tokens // _MIN_STEP_TOKENS + 1)


async def tasks_side_effects(
    ctx: Context,
    file: FileArg = None,
    tool_call: ToolCallArg = None,
    since: Since = None,
    until: Until = None,
    task_id: TaskFilter = None,
    limit: EffectsLimit = 20,
    cursor: Cursor = None,
    detail: DetailArg = "standard",
    max_tokens: MaxTokens = DEFAULT_MAX_TOKENS,
) -> Annotated[CallToolResult, SideEffectsResult]:
    """Which executions wrote a file (or any file under a directory ending in /) or called a tool,
    newest first. Answers from an index kept at write time."""
    if (file is None) == (tool_call is None):
        raise InvalidInput(
            "file", "give exactly one of file and tool_call", hint="Search one side effect at a time."
        )
    kind, value = (
        ("tool", tool_call) if tool_call is not None else ("dir" if file.endswith("/") else "file", file)
    )  # type: ignore[union-attr]
    store = store_of(ctx)
    search = {"since": since, "until": until, "task_id": task_id}
    page = await store.side_effects(kind, value or "", limit=limit, cursor=cursor, **search)
    query = f"{'tool call' if kind == 'tool' else 'directory' if kind == 'dir' else 'file'} {value}"
    fields = page.model_dump(include={"total", "total_exact", "has_more", "next_cursor"})
    suggestion = None
    if kind == "file" and not page.matches and cursor is None:
        # "docs" when the runs wrote docs/...: one more index seek, only for an empty answer.
        under = await store.side_effects("dir", f"{value}/", limit=1, **search)
        if under.matches:
            suggestion = (
                f"Files under the directory {value}/ were written: call again with file='{value}/' "
                "(a directory ends in /)."
            )
    fitted = fit_shaped(
        lambda shape: SideEffectsResult.of(query, page.matches, fields, shape, suggestion), detail, max_tokens
    )
    answer = fitted.answer
    if isinstance(answer, SideEffectsResult) and answer.omitted and answer.returned:
        # The budget kept the first matches: the next page starts right after them.
        fitted = fitted.redone(answer.model_copy(update={"next_cursor": page.cursor_after(answer.returned)}))
    return reply_fitted(fitted)


DEBUG_TOOLS = (
    ToolSpec(tasks_failure_patterns, READ_ONLY, "Failure groups by fingerprint"),
    ToolSpec(tasks_stats, READ_ONLY, "Run statistics"),
    ToolSpec(tasks_timeline, READ_ONLY, "A task's or trace's timeline"),
    ToolSpec(tasks_side_effects, READ_ONLY, "Who wrote a file or called a tool"),
)
