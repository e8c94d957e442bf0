"""What the debugging tools answer (tasks_failure_patterns, tasks_stats, tasks_timeline,
tasks_side_effects): detail-aware rows built from store.analysis views, each answer a
`server.budget.Sized` so it fits `max_tokens` and says what it left out. These answers leave
null fields out (OMIT_NONE) rather than sending them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Self

from pydantic import Field, PrivateAttr

from server.answer import Part
from server.budget import Shape, Sized, decode_offsets, encode_offsets, item_paths
from server.render import clip, counted, duration, plural, when
from server.results import (
    EVENT_URI,
    EXECUTION_URI,
    TEXT_ROWS,
    cut_note,
    no_end,
    resource_uri,
    whole_event_hint,
)
from store.analysis import (
    FailureGroup,
    FailurePatterns,
    RunStats,
    SideEffectMatch,
    Step,
    StepKey,
    TaskStats,
    step_key,
)


def _rows(prefix: str, table: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    return {detail: item_paths(prefix, paths) for detail, paths in table.items()}


def _text_lines(rows: list[Any], what: str) -> list[str]:
    lines = [row.line() for row in rows[:TEXT_ROWS]]
    if len(rows) > TEXT_ROWS:
        lines.append(f"  ... and {len(rows) - TEXT_ROWS} more {what} in the structured content")
    return lines


# ---- tasks_failure_patterns --------------------------------------------------------------


class PatternExample(Part):
    task_id: str
    trace_id: str
    span_id: str
    started_at: datetime | None = None
    message: str | None = Field(None, description="this failure's own message")
    stack: str | None = Field(None, description="its traceback (detail=full)")
    fixed_by_retry: bool = Field(description="a later attempt of this trace succeeded")


class PatternRow(Part):
    fingerprint: str = Field(description="error type + normalized message + stack_hash")
    error_type: str
    message: str = Field(description="normalized: ids, numbers and times as <uuid>, <n>, <ts>, ...")
    stack_hash: str | None
    count: int
    first_seen: datetime | None = None
    last_seen: datetime
    tasks_affected: int
    tasks: list[str] | None = Field(None, description="the most affected task_ids (up to 5)")
    actors_affected: int
    actors: list[str] | None = None
    trend: list[int] | None = Field(None, description="failures per bucket, oldest first (see trend_start)")
    fixed_by_retry: int = Field(description="failures whose trace later succeeded on a retry")
    example: PatternExample = Field(description="the most recent failure of the group")

    EXCLUDED: ClassVar[dict[str, tuple[str, ...]]] = {
        "summary": (
            "first_seen",
            "tasks",
            "actors",
            "trend",
            "example.message",
            "example.stack",
            "example.started_at",
        ),
        "standard": ("example.stack",),
        "full": (),
    }
    DROPS: ClassVar[tuple[str, ...]] = (
        "example.stack",
        "trend",
        "actors",
        "tasks",
        "example.message",
        "first_seen",
        "example.started_at",
    )

    @classmethod
    def of(cls, group: FailureGroup, shape: Shape) -> Self:
        x = group.example
        summary = shape.detail == "summary"
        example = PatternExample(
            task_id=x.task_id,
            trace_id=x.trace_id,
            span_id=x.span_id,
            started_at=x.started_at,
            message=shape.text(x.error_message, "message", "groups[].example.message", one_line=True) or "",
            stack=shape.text(x.error_stack, "stack", "groups[].example.stack")
            if shape.detail == "full"
            else None,
            fixed_by_retry=x.fixed_by_retry,
        )
        return cls(
            **group.model_dump(
                include={
                    "fingerprint",
                    "error_type",
                    "stack_hash",
                    "count",
                    "first_seen",
                    "last_seen",
                    "tasks_affected",
                    "actors_affected",
                    "fixed_by_retry",
                }
            ),
            message=shape.text(group.message, "message", "groups[].message", one_line=True) or "",
            tasks=None if summary else group.tasks,
            actors=None if summary else group.actors,
            trend=None if summary else group.trend,
            example=example,
        )

    def line(self) -> str:
        retried = f"{self.fixed_by_retry} fixed by a retry" if self.fixed_by_retry else "no retry fixed it"
        return (
            f"- {self.count}x {self.error_type}: {clip(self.message, 100)} [{self.fingerprint}] "
            f"{plural(self.tasks_affected, 'task')}, last {when(self.last_seen)}, {retried}; "
            f"e.g. trace_id={self.example.trace_id}"
        )


class FailurePatternsResult(Sized):
    groups: list[PatternRow] = Field(description="commonest first")
    returned: int
    total: int = Field(description="failure groups in the window")
    total_failures: int
    trend_start: datetime | None = Field(None, description="start of the first trend bucket")
    trend_bucket_seconds: int = Field(description="width of each trend bucket")
    has_more: bool
    next_cursor: str | None = Field(None, description="pass as cursor for the next groups")

    EXCLUDED = _rows("groups.*", PatternRow.EXCLUDED)
    DROP_ORDER = item_paths("groups.*", PatternRow.DROPS)
    TRIM = ("groups",)
    OMIT_NONE = True
    _key: str = PrivateAttr(default="")
    _offset: int = PrivateAttr(default=0)

    @classmethod
    def of(cls, view: FailurePatterns, shape: Shape, key: str) -> Self:
        groups = [PatternRow.of(g, shape) for g in view.groups]
        end = view.offset + len(groups)
        answer = cls(
            groups=groups,
            returned=len(groups),
            total=view.total_groups,
            total_failures=view.total_failures,
            trend_start=view.trend_start,
            trend_bucket_seconds=view.trend_bucket_seconds,
            has_more=end < view.total_groups,
            next_cursor=encode_offsets(key, end) if end < view.total_groups else None,
            detail=shape.detail,
        )
        answer._key, answer._offset = key, view.offset
        return answer.settled(shape.clipped)

    def trimmed(self, name: str, keep: int) -> Self:
        cut = super().trimmed(name, keep)
        cursor = encode_offsets(self._key, self._offset + keep)
        return cut.model_copy(update={"returned": keep, "has_more": True, "next_cursor": cursor})

    def rest_hint(self) -> str | None:
        hints = []
        if self.omitted:
            hints.append("The next groups: call tasks_failure_patterns again with cursor=next_cursor.")
        if self.dropped_fields or self.clipped_fields:
            hints.append(f"A failure in full: tasks_get(span_id=example.span_id) or {EXECUTION_URI}.")
        return " ".join(hints) or None

    def render(self) -> str:
        if not self.groups and not self.omitted:
            return "No failures in this window."
        groups, failures = plural(self.total, "failure group"), plural(self.total_failures, "failure")
        head = f"{self.returned} of {groups} ({failures}), commonest first."
        if self.has_more and self.next_cursor:
            head += f' More: cursor="{self.next_cursor}".'
        parts = [head, *_text_lines(self.groups, "groups")]
        parts.append("Next: tasks_by_trace(example trace_id) shows one failure's whole story.")
        return "\n".join([*parts, *cut_note(self)])


# ---- tasks_stats -------------------------------------------------------------------------


class DurationRow(Part):
    measured: int = Field(description="finished runs with a duration")
    p50_ms: int | None = None
    p95_ms: int | None = None
    p99_ms: int | None = None


class TokenRow(Part):
    input_tokens: int
    output_tokens: int
    cost: float


class StatsRow(Part):
    key: str | None = Field(None, description="the group's task_id / task_type / actor (group_by)")
    runs: int
    success: int
    failed: int
    partial: int
    cancelled: int
    running: int
    success_rate: float | None = Field(None, description="success / finished runs")
    retries: int = Field(description="runs with attempt > 1")
    retry_rate: float | None = None
    succeeded_after: dict[str, int] | None = Field(None, description="successful runs by attempt number")
    durations: DurationRow
    tokens: TokenRow | None = None

    EXCLUDED: ClassVar[dict[str, tuple[str, ...]]] = {"summary": ("succeeded_after", "tokens")}
    DROPS: ClassVar[tuple[str, ...]] = ("succeeded_after", "tokens")

    @classmethod
    def of(cls, stats: RunStats) -> Self:
        return cls(
            **stats.model_dump(exclude={"durations", "input_tokens", "output_tokens", "cost"}),
            durations=DurationRow(**stats.durations.model_dump()),
            tokens=TokenRow(
                input_tokens=stats.input_tokens, output_tokens=stats.output_tokens, cost=stats.cost
            ),
        )

    def line(self) -> str:
        name = f"{self.key}: " if self.key is not None else ""
        rate = f"{self.success_rate:.1%} success" if self.success_rate is not None else "none finished"
        d = self.durations
        timing = f"p50 {duration(d.p50_ms)}, p95 {duration(d.p95_ms)}, p99 {duration(d.p99_ms)}"
        return (
            f"- {name}{plural(self.runs, 'run')}, {rate} ({self.failed} failed, {self.partial} partial), "
            f"{plural(self.retries, 'retry', 'retries')}; {timing}"
        )


class StatsResult(Sized):
    scope: str = Field(description="what was counted")
    group_by: str | None = None
    groups: list[StatsRow] = Field(description="most runs first; one row without group_by")
    returned: int
    total: int = Field(description="groups in the scope")

    EXCLUDED = _rows("groups.*", StatsRow.EXCLUDED)
    DROP_ORDER = item_paths("groups.*", StatsRow.DROPS)
    TRIM = ("groups",)
    OMIT_NONE = True

    @classmethod
    def of(cls, view: TaskStats, shape: Shape, scope: str, group_by: str | None) -> Self:
        groups = [StatsRow.of(g) for g in view.groups]
        return cls(
            scope=scope,
            group_by=group_by,
            groups=groups,
            returned=len(groups),
            total=view.total_groups,
            detail=shape.detail,
        ).settled()

    def trimmed(self, name: str, keep: int) -> Self:
        return super().trimmed(name, keep).model_copy(update={"returned": keep})

    def rest_hint(self) -> str | None:
        """Both cuts are the budget's (groups past `limit` are not counted as omitted). Short: the
        hint is part of what the budget measures."""
        hints = []
        if self.omitted:
            summary = ", detail='summary'" if self.detail != "summary" else ""
            hints.append(
                f"Groups left out to fit: raise max_tokens{summary}, or narrow with task_id / task_type."
            )
        if self.dropped_fields:
            hints.append("Fields left out to fit: raise max_tokens, or a lower limit keeps them.")
        return " ".join(hints) or None

    def render(self) -> str:
        if not self.groups or self.groups[0].runs == 0:
            return f"No runs in this scope ({self.scope})."
        head = f"Run statistics for {self.scope}" + (f", by {self.group_by}" if self.group_by else "") + ":"
        more = [f"{self.returned} of {plural(self.total, 'group')} shown."] if self.group_by else []
        return "\n".join([head, *_text_lines(self.groups, "groups"), *more, *cut_note(self)])


# ---- tasks_timeline ----------------------------------------------------------------------


class StepRow(Part):
    at: datetime
    gap_ms: int | None = Field(None, description="milliseconds since the previous step")
    kind: str = Field(description="event | execution")
    name: str = Field(description="the event type, or run / worker run")
    actor: str | None = None
    span_id: str | None = None
    attempt: int | None = None
    worker_id: str | None = None
    status: str | None = None
    duration_ms: int | None = None
    error: str | None = None
    files: list[str] | None = Field(None, description="files the run wrote")
    tools: list[str] | None = Field(None, description="tools the run called")
    note: str | None = Field(None, description="the event's key data: worker, handoff, assignee, ...")
    anomaly: str | None = None
    data: dict[str, Any] | None = Field(None, description="the event's data (detail=full)")

    EXCLUDED: ClassVar[dict[str, tuple[str, ...]]] = {
        "summary": ("actor", "files", "tools", "data", "note"),
        "standard": ("data",),
        "full": (),
    }
    DROPS: ClassVar[tuple[str, ...]] = ("data", "tools", "files", "note", "actor")
    # A factory, not default=(0, 0, 0): pydantic deep-copies a tuple default for every row it builds.
    _key: StepKey = PrivateAttr(default_factory=lambda: (0, 0, 0))

    @classmethod
    def of(cls, step: Step, shape: Shape) -> Self:
        fields = step.model_dump(exclude={"files", "tools", "error", "data", "seq", "event_id"})
        data = None
        if step.data and shape.detail == "full":
            data = shape.data(
                step.data, "steps[].data", lambda: resource_uri(EVENT_URI, event_id=step.event_id or "")
            )
        row = cls(
            **fields,
            error=shape.text(step.error, "message", "steps[].error", one_line=True),
            files=step.files or None,
            tools=step.tools or None,
            data=data,
        )
        row._key = step_key(step)
        return row

    def line(self) -> str:
        gap = f"+{duration(self.gap_ms)}" if self.gap_ms is not None else "start"
        text = f"- {when(self.at)} ({gap}) {self.name}"
        if self.kind == "execution":
            text += f" attempt {self.attempt}" + (f" [{self.worker_id}]" if self.worker_id else "")
            if self.duration_ms is not None:
                text += f": {self.status} after {duration(self.duration_ms)}"
            elif self.status == "running":
                text += f": {no_end(self.at)}"
            else:
                text += f": {self.status}"
        text += f" by {self.actor}" if self.actor else ""
        text += f" ({self.note})" if self.note else ""
        text += f" - {clip(self.error, 100)}" if self.error else ""
        text += f"; wrote {', '.join(self.files[:3])}" if self.files else ""
        return text + (f" [anomaly: {self.anomaly}]" if self.anomaly else "")


def timeline_call(task_id: str | None, trace_id: str | None) -> str:
    """What a timeline cursor is bound to: it pages one task's or one trace's story, no other."""
    trace = trace_id.strip().lower() if trace_id else None  # as the store keys it
    return f"timeline|task_id={task_id}|trace_id={trace}"


def timeline_position(cursor: str, task_id: str | None, trace_id: str | None) -> StepKey:
    """The step key a timeline cursor names (InvalidInput when garbled or issued for another story)."""
    us, rank, seq = decode_offsets(cursor, timeline_call(task_id, trace_id), 3)
    return us, rank, seq


class TimelineResult(Sized):
    task_id: str | None = None
    trace_id: str | None = None
    steps: list[StepRow] = Field(description="oldest first; when cut, the most recent steps are kept")
    returned: int
    total: int = Field(description="executions + events recorded for it before `until` / `cursor`")
    total_exact: bool = Field(
        True, description="false when total is a lower bound (each kind is counted to 1,000)"
    )
    next_cursor: str | None = Field(
        None, description="pass as cursor for the steps before these (ties on a timestamp included)"
    )

    EXCLUDED = _rows("steps.*", StepRow.EXCLUDED)
    DROP_ORDER = item_paths("steps.*", StepRow.DROPS)
    TRIM = ("steps",)
    OMIT_NONE = True

    @classmethod
    def of(
        cls,
        steps: list[Step],
        shape: Shape,
        task_id: str | None,
        trace_id: str | None,
        total: int,
        total_exact: bool = True,
    ) -> Self:
        rows = [StepRow.of(s, shape) for s in steps]
        answer = cls(
            task_id=task_id,
            trace_id=trace_id,
            steps=rows,
            returned=len(rows),
            total=total,
            total_exact=total_exact,
            omitted=total - len(rows),
            detail=shape.detail,
        )
        return answer.with_cursor().settled(shape.clipped)

    def with_cursor(self) -> Self:
        """With next_cursor at the oldest step shown, when older ones are left out."""
        cursor = None
        if self.omitted and self.steps:
            cursor = encode_offsets(timeline_call(self.task_id, self.trace_id), *self.steps[0]._key)
        return self.model_copy(update={"next_cursor": cursor})

    def trimmed(self, name: str, keep: int) -> Self:
        """The most recent `keep` steps (the story's end is what a debugger reads first)."""
        steps = self.steps[len(self.steps) - keep :] if keep else []
        cut = self.model_copy(
            update={"steps": steps, "returned": keep, "omitted": self.omitted + len(self.steps) - keep}
        )
        return cut.with_cursor()

    def rest_hint(self) -> str | None:
        hints = []
        if self.omitted and self.steps:
            target = f"task_id='{self.task_id}'" if self.task_id else f"trace_id='{self.trace_id}'"
            hints.append(f"Earlier steps: tasks_timeline({target}, cursor=next_cursor).")
        elif self.omitted:
            hints.append("detail='summary' fits more steps.")
        if self.dropped_fields or self.clipped_fields:
            hints.append(f"One run in full: tasks_get(span_id) or {EXECUTION_URI}.")
        hints += whole_event_hint(self)
        return " ".join(hints) or None

    def render(self) -> str:
        what = f"task {self.task_id}" if self.task_id else f"trace {self.trace_id}"
        if not self.steps and not self.omitted:
            return f"Nothing is recorded for {what}."
        of = plural(self.total, "step") if self.total_exact else f"{counted(self.total, False)} steps"
        head = f"Timeline of {what}: {self.returned} of {of}, oldest first."
        if self.next_cursor:
            head += f' Earlier steps: cursor="{self.next_cursor}".'
        lines = [row.line() for row in self.steps[-2 * TEXT_ROWS :]]
        if len(self.steps) > 2 * TEXT_ROWS:
            lines.insert(
                0, f"  ... {len(self.steps) - 2 * TEXT_ROWS} earlier steps in the structured content"
            )
        return "\n".join([head, *lines, *cut_note(self)])


# ---- tasks_side_effects ------------------------------------------------------------------

CURSOR_ROOM = "~" * 96


class EffectRow(Part):
    kind: str = Field(description="file | dir | tool")
    value: str
    span_id: str
    trace_id: str
    task_id: str
    status: str
    attempt: int
    started_at: datetime
    duration_ms: int | None = None
    actor: str | None = None
    worker_id: str | None = None
    error: str | None = Field(None, description="type: message, when it failed")
    files_written: list[str] | None = None
    tool_calls: list[str] | None = None

    EXCLUDED: ClassVar[dict[str, tuple[str, ...]]] = {
        "summary": ("duration_ms", "actor", "worker_id", "files_written", "tool_calls"),
        "standard": ("tool_calls",),
        "full": (),
    }
    DROPS: ClassVar[tuple[str, ...]] = ("tool_calls", "files_written", "error", "actor", "worker_id")

    @classmethod
    def of(cls, match: SideEffectMatch, shape: Shape) -> Self:
        e = match.execution
        error = f"{e.error.type}: {e.error.message}" if e.error else None
        return cls(
            kind=match.kind,
            value=match.value,
            span_id=e.span_id,
            trace_id=e.trace_id,
            task_id=e.task_id,
            status=e.status,
            attempt=e.attempt,
            started_at=e.started_at,
            duration_ms=e.duration_ms,
            actor=e.actor,
            worker_id=e.worker_id,
            error=shape.text(error, "message", "matches[].error", one_line=True),
            files_written=e.io.files_written or None,
            tool_calls=e.io.tool_calls or None,
        )

    def line(self) -> str:
        took = duration(self.duration_ms) if self.duration_ms is not None else "-"
        took = no_end(self.started_at) if self.status == "running" and self.duration_ms is None else took
        text = f"- {when(self.started_at)} {self.status} {self.task_id} attempt {self.attempt} ({took})"
        return text + f" span_id={self.span_id}" + (f" - {clip(self.error, 100)}" if self.error else "")


class SideEffectsResult(Sized):
    query: str = Field(description="what was searched, e.g. file reports/9.json")
    matches: list[EffectRow] = Field(description="newest first")
    returned: int
    total: int = Field(description="matching executions (a lower bound when total_exact is false)")
    total_exact: bool
    has_more: bool
    next_cursor: str | None = Field(None, description="pass as cursor to get the next page")
    suggestion: str | None = Field(
        None, description="when nothing matched: a search that does (a file name that is a directory)"
    )

    EXCLUDED = _rows("matches.*", EffectRow.EXCLUDED)
    DROP_ORDER = item_paths("matches.*", EffectRow.DROPS)
    TRIM = ("matches",)
    OMIT_NONE = True

    @classmethod
    def of(
        cls,
        query: str,
        matches: list[SideEffectMatch],
        page: dict[str, Any],
        shape: Shape,
        suggestion: str | None = None,
    ) -> Self:
        rows = [EffectRow.of(m, shape) for m in matches]
        answer = cls(
            query=query, matches=rows, returned=len(rows), detail=shape.detail, suggestion=suggestion, **page
        )
        return answer.settled(shape.clipped)

    def trimmed(self, name: str, keep: int) -> Self:
        cut = super().trimmed(name, keep)
        return cut.model_copy(update={"returned": keep, "has_more": True, "next_cursor": CURSOR_ROOM})

    def rest_hint(self) -> str | None:
        hints = []
        if self.omitted:
            hints.append("The next matches: call tasks_side_effects again with cursor=next_cursor.")
        if self.dropped_fields or self.clipped_fields:
            hints.append(f"One execution in full: tasks_get(span_id) or {EXECUTION_URI}.")
        return " ".join(hints) or None

    def render(self) -> str:
        if not self.matches and not self.omitted:
            found = f" {self.suggestion}" if self.suggestion else ""
            return f"No execution recorded the {self.query}.{found}"
        total = counted(self.total, self.total_exact)
        head = f"{self.returned} of {total} executions with the {self.query}, newest first."
        if self.has_more and self.next_cursor:
            head += f' More: cursor="{self.next_cursor}".'
        return "\n".join([head, *_text_lines(self.matches, "matches"), *cut_note(self)])
