"""Debugging views over the history: failure groups, run statistics, a task's timeline and the
side-effect index. Pure: the models the store answers with and the rules that shape them
(fingerprints, percentile ranks, trend buckets, timeline steps), no I/O.

A failure's *fingerprint* groups "the same failure": the exception type, the message with its
volatile parts replaced by placeholders (store.fingerprint.normalize_message) and the stack_hash
(the call path). Two failures with the same stack but different messages ("disk full" vs
"permission denied") are different groups; two with the same message apart from an id are one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from store.fingerprint import normalize_message
from store.models import Execution, ExecutionStatus, KeysetPage, LastFailed, LifecycleEvent
from store.timeutil import to_us

StatsGroupBy = Literal["task_id", "task_type", "actor"]
SideEffectKind = Literal["file", "dir", "tool", "artifact", "script"]

PERCENTILES = (50, 95, 99)
PATTERNS_LIMIT_MAX = 50
STATS_GROUPS_MAX = 100
STORY_LIMIT_MAX = 500
EFFECTS_LIMIT_MAX = 100
TREND_BUCKETS = 12
STALE_AFTER = timedelta(hours=1)  # a run with no end recorded for longer is probably dead

# Where each side-effect kind comes from in an execution's `io`; "dir" rows are derived from files.
IO_FIELDS: dict[str, str] = {
    "file": "files_written",
    "tool": "tool_calls",
    "artifact": "artifact_ids",
    "script": "script_runs",
}


class _View(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- rules -------------------------------------------------------------------------------


def failure_fingerprint(error_type: str, message: str | None, stack_hash: str | None) -> str:
    """16 hex chars naming (error type, normalized message, stack_hash)."""
    payload = [error_type.strip(), normalize_message(message or ""), stack_hash or ""]
    encoded = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(encoded).hexdigest()[:16]


def directories_of(path: str) -> list[str]:
    """Every directory above `path`, each ending in `/`: `a/b/c.txt` -> [`a/`, `a/b/`]."""
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) + "/" for i in range(len(parts)) if parts[i] or i == 0]


def side_effects_of(io: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(kind, value) pairs an execution's io (`Execution.io` dumped) declares, with the
    directories above its files, each once."""
    found: list[tuple[str, str]] = []
    for kind, field in IO_FIELDS.items():
        for value in io.get(field) or ():
            if isinstance(value, str):
                found.append((kind, value))
                found += [("dir", d) for d in directories_of(value)] if kind == "file" else []
    return list(dict.fromkeys(found))


def percentile_rank(count: int, percentile: int) -> int:
    """The 0-based rank of the `percentile`th value among `count` sorted values, by nearest rank
    (no interpolation): ceil(percentile * count / 100) - 1, so p50 of 4 values is the 2nd, p99
    of 2 is the slower one and p99 of 100 is the 99th. store.sqlite.analysis_queries'
    durations_ranked spells the same rule in SQL."""
    return max((percentile * count + 99) // 100 - 1, 0)


def bucket_width_us(since_us: int, until_us: int, buckets: int = TREND_BUCKETS) -> int:
    """Equal slices covering [since_us, until_us), at least one second each."""
    return max(-(-(until_us - since_us) // buckets), 1_000_000)


# ---- failure groups ----------------------------------------------------------------------


class FailureExample(_View):
    """The most recent failure of a group."""

    task_id: str
    trace_id: str
    span_id: str
    started_at: datetime
    error_type: str
    error_message: str
    error_stack: str | None
    stack_hash: str | None
    fixed_by_retry: bool = Field(description="a later attempt of this trace succeeded")


class FailureGroup(_View):
    fingerprint: str
    error_type: str
    message: str = Field(description="the normalized message (ids, numbers and times as placeholders)")
    stack_hash: str | None
    count: int
    first_seen: datetime
    last_seen: datetime
    tasks_affected: int
    tasks: list[str] = Field(description="the most affected task ids, most failures first")
    actors_affected: int
    actors: list[str]
    trend: list[int] = Field(description="failures per trend bucket, oldest first")
    fixed_by_retry: int = Field(description="failures of this group whose trace later succeeded on a retry")
    example: FailureExample


class FailurePatterns(_View):
    groups: list[FailureGroup]
    total_groups: int
    total_failures: int
    trend_start: datetime | None
    trend_bucket_seconds: int
    offset: int


# ---- statistics --------------------------------------------------------------------------


class DurationStats(_View):
    measured: int = Field(description="finished runs with a duration")
    p50_ms: int | None
    p95_ms: int | None
    p99_ms: int | None


class RunStats(_View):
    key: str | None = Field(description="the group's task_id / task_type / actor; null without group_by")
    runs: int
    success: int
    failed: int
    partial: int
    cancelled: int
    running: int
    success_rate: float | None = Field(description="success / finished runs")
    retries: int = Field(description="runs with attempt > 1")
    retry_rate: float | None
    succeeded_after: dict[str, int] = Field(description="successful runs by attempt number")
    durations: DurationStats
    input_tokens: int
    output_tokens: int
    cost: float


class TaskStats(_View):
    groups: list[RunStats]
    total_groups: int


# ---- recent failures, page by page -------------------------------------------------------

FailurePosition = tuple[int, int]
"""A failure's place in tasks_last_failed's order: (started_us, seq), newest first."""


class FailurePage(_View):
    """tasks_last_failed's view with where each failure stands, so a page can end anywhere
    (even inside a run of failures that share a started_at) and the next one start right after."""

    view: LastFailed
    positions: list[FailurePosition] = Field(description="(started_us, seq) of each failure, in order")
    stale_running: int = Field(
        0, description="executions in the window with no end recorded, started over STALE_AFTER ago"
    )


# ---- side effects ------------------------------------------------------------------------


class SideEffectMatch(_View):
    kind: SideEffectKind
    value: str
    execution: Execution


def trace_outcome(executions: list[Execution]) -> tuple[int, ExecutionStatus | None]:
    """A trace's retry count and final status: how many of its runs retried another, and the status
    of its latest attempt among the top-level runs (child work does not decide how a trace ended)."""
    top = [e for e in executions if e.parent_span_id is None] or executions
    retries = sum(1 for e in executions if e.retry_of is not None)
    return retries, max(top, key=lambda e: (e.attempt, e.started_at)).status if top else None


class SideEffectPage(_View, KeysetPage):
    matches: list[SideEffectMatch]
    total: int
    total_exact: bool
    has_more: bool
    next_cursor: str | None


# ---- timeline ----------------------------------------------------------------------------


class Story(_View):
    """The raw material of a timeline: executions and events of one task or one trace, the most
    recent ones before `until` (and before a step key, see `bounds_before`), how many there are in
    all, and each row's store sequence number (what orders rows that share a timestamp)."""

    task_id: str | None
    trace_id: str | None
    executions: list[Execution]
    events: list[LifecycleEvent]
    executions_total: int
    events_total: int
    totals_exact: bool = Field(True, description="false when a total stopped at its cap (a lower bound)")
    execution_seqs: list[int] | None = None
    event_seqs: list[int] | None = None


StepKey = tuple[int, int, int]
"""A step's place in a timeline: (microseconds, 0 for an event or 1 for an execution, seq). Events
come before executions at the same instant; `seq` orders rows of one kind that share it."""


def step_key(step: Step) -> StepKey:
    return _key_of(step.at, step.kind == "event", step.seq)


def _key_of(at: datetime, is_event: bool, seq: int | None) -> StepKey:
    return (to_us(at), 0 if is_event else 1, seq or 0)


def bounds_before(key: StepKey) -> tuple[tuple[int, int], tuple[int, int]]:
    """The steps strictly before `key`, as a bound on each table's (time_us, seq) row value (rows
    with a smaller row value): (executions' bound, events' bound). seq starts at 1, so (t, 0)
    excludes every row at t, and (t + 1, 0) includes every row at t."""
    us, rank, seq = key
    if rank == 0:  # an event: executions at `us` come after it, earlier events at `us` before it
        return (us, 0), (us, seq)
    return (us, seq), (us + 1, 0)


class Step(_View):
    at: datetime
    gap_ms: int | None = Field(description="milliseconds since the previous step")
    kind: Literal["event", "execution"]
    name: str = Field(description="the event type, or 'run' / 'worker run' for an execution")
    actor: str | None = None
    span_id: str | None = None
    attempt: int | None = None
    worker_id: str | None = None
    status: str | None = None
    duration_ms: int | None = None
    error: str | None = None
    files: list[str] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list)
    note: str | None = None
    anomaly: str | None = None
    data: dict[str, Any] | None = None
    event_id: str | None = None
    seq: int | None = Field(None, description="the row's store sequence number (orders ties)")


_ONE_MS = timedelta(milliseconds=1)
_NOTE_KEYS = ("worker_id", "handoff_id", "to_master", "assigned_to", "progress", "status", "reason", "result")


def timeline_steps(story: Story) -> list[Step]:
    """Executions and events as one time-ordered list (by `step_key`), each with the gap since the
    one before. When one kind was cut at its limit, the steps before its oldest kept item are left
    out so the story is complete from where it starts (and the next page, before the oldest step
    shown, misses nothing)."""
    run_seqs = _seqs(story.execution_seqs, story.executions)
    event_seqs = _seqs(story.event_seqs, story.events)
    # Ordered by step key before any Step is built, so each is built once, with its gap.
    runs = [
        (_key_of(e.started_at, False, seq), e, seq) for e, seq in zip(story.executions, run_seqs, strict=True)
    ]
    events = [(_key_of(ev.ts, True, seq), ev, seq) for ev, seq in zip(story.events, event_seqs, strict=True)]
    cut = []
    if runs and len(runs) < story.executions_total:
        cut.append(min(key for key, _, _ in runs))
    if events and len(events) < story.events_total:
        cut.append(min(key for key, _, _ in events))
    start = max(cut) if cut else None
    ordered = sorted(
        (item for item in runs + events if start is None or item[0] >= start), key=lambda i: i[0]
    )
    steps: list[Step] = []
    previous: datetime | None = None
    for _, item, seq in ordered:
        is_event = isinstance(item, LifecycleEvent)
        at = item.ts if is_event else item.started_at
        # Whole milliseconds in integers: total_seconds() * 1000 came out 1 ms short for 1,001 ms.
        gap = None if previous is None else (at - previous) // _ONE_MS
        steps.append(_event_step(item, seq, gap) if is_event else _run_step(item, seq, gap))
        previous = at
    return steps


def _seqs(seqs: list[int] | None, items: list[Any]) -> list[int | None]:
    return list(seqs) if seqs is not None else [None] * len(items)


def _run_step(e: Execution, seq: int | None, gap_ms: int | None) -> Step:
    error = f"{e.error.type}: {e.error.message}" if e.error else None
    return Step(
        at=e.started_at,
        gap_ms=gap_ms,
        kind="execution",
        name="worker run" if e.worker_id else "run",
        actor=e.actor,
        span_id=e.span_id,
        attempt=e.attempt,
        worker_id=e.worker_id,
        status=e.status,
        duration_ms=e.duration_ms,
        error=error,
        files=list(e.io.files_written),
        tools=list(e.io.tool_calls),
        seq=seq,
    )


_NOTE_VALUE = (str, int, float)  # a tuple: `str | int | float` would build a union on every call


def _event_step(ev: LifecycleEvent, seq: int | None, gap_ms: int | None) -> Step:
    notes = [f"{key}={ev.data[key]}" for key in _NOTE_KEYS if isinstance(ev.data.get(key), _NOTE_VALUE)]
    error = ev.data.get("error")
    if isinstance(error, dict) and error.get("type"):
        notes.append(f"error={error['type']}: {error.get('message', '')}")
    return Step(
        at=ev.ts,
        gap_ms=gap_ms,
        kind="event",
        name=ev.event_type,
        actor=ev.actor,
        span_id=ev.span_id,
        note=", ".join(notes) or None,
        anomaly=ev.anomaly,
        data=ev.data or None,
        event_id=ev.event_id,
        seq=seq,
    )
