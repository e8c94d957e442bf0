"""The debugging reads (store.analysis views) for a backend with a snapshot pool: failure groups,
run statistics, the raw material of a timeline, and side-effect search.

Engine-neutral like store.sqlite.transfer: each read is a read plan (store.dbapi.ReadPlan) of `?`
SQL from store.sqlite.analysis_queries, so `AnalysisMixin` serves SqliteBackend and PostgresBackend
alike. A plan runs in one read transaction, so its several statements see one committed state."""

from __future__ import annotations

import base64
import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from store.analysis import (
    PERCENTILES,
    STALE_AFTER,
    DurationStats,
    FailureExample,
    FailureGroup,
    FailurePage,
    FailurePatterns,
    RunStats,
    SideEffectMatch,
    SideEffectPage,
    StepKey,
    Story,
    TaskStats,
    bounds_before,
    bucket_width_us,
    percentile_rank,
)
from store.dbapi import ReadPlan
from store.errors import InvalidInput
from store.fingerprint import normalize_message
from store.ids import cursor_int
from store.sqlite import analysis_queries as aq
from store.sqlite import rows
from store.sqlite.last_failed import read_failure_page
from store.timeutil import from_us, now_utc, to_us

NAMED_MEMBERS = 5  # tasks / actors named per failure group (all are counted)
STATUSES = ("success", "failed", "partial", "cancelled", "running")
# A time window of top-level runs with at most this many durations sorts them (one pass over the
# window); a wider one walks ix_exec_top_duration, whose cost is bounded by half the index.
SORT_AT_MOST = 20_000


def _us(moment: datetime | None) -> int | None:
    return None if moment is None else to_us(moment)


class AnalysisMixin:
    _readers: Any

    async def failure_patterns(
        self, task_id: str | None, since: datetime | None, until: datetime | None, limit: int, offset: int
    ) -> FailurePatterns:
        end_now = to_us(now_utc()) + 1
        return await self._readers.read(_failure_patterns(task_id, since, until, limit, offset, end_now))

    async def run_stats(
        self,
        task_id: str | None,
        task_type: str | None,
        since: datetime | None,
        until: datetime | None,
        group_by: str | None,
        workers: bool,
        limit: int,
    ) -> TaskStats:
        plan = _run_stats(task_id, task_type, since, until, group_by, workers, limit)
        return await self._readers.read(plan)

    async def story(
        self,
        task_id: str | None,
        trace_id: str | None,
        until: datetime | None,
        limit: int,
        before: StepKey | None = None,
    ) -> Story:
        return await self._readers.read(_story(task_id, trace_id, until, limit, before))

    async def failure_page(
        self,
        limit: int,
        task_id: str | None,
        since: datetime | None,
        until: datetime | None,
        unique_errors: bool,
        before: tuple[int, int] | None,
    ) -> FailurePage:
        """tasks_last_failed's answer with each failure's (started_us, seq). The first page is
        last_failed's; a later one (`before`: the position of the last failure shown) is a keyset
        page in the same order, with the window's patterns and totals. One snapshot either way, so
        the page, its patterns and its positions agree."""
        window = (task_id, _us(since), _us(until))
        stale_before_us = to_us(now_utc() - STALE_AFTER)
        plan = read_failure_page(window, before, limit, unique_errors, stale_before_us)
        return await self._readers.read(plan)

    async def side_effects(
        self,
        kind: str,
        value: str,
        since: datetime | None,
        until: datetime | None,
        task_id: str | None,
        limit: int,
        cursor: str | None,
    ) -> SideEffectPage:
        digest = _digest(kind, value, since, until, task_id)
        after = _decode_cursor(cursor, digest) if cursor else None
        return await self._readers.read(
            _side_effects(kind, value, since, until, task_id, limit, after, digest)
        )


# ---- read plans (store.dbapi.ReadPlan: each runs in one read transaction) ------------------


def _failure_patterns(
    task_id: str | None, since: datetime | None, until: datetime | None, limit: int, offset: int, end_now: int
) -> ReadPlan[FailurePatterns]:
    window = aq.failure_window(task_id, _us(since), _us(until))
    all_time = task_id is None and since is None and until is None  # store.sqlite.failure_groups
    by_range = yield from _few_failures(window, task_id, since, until)
    found = (
        yield aq.ranked_groups(limit, offset)
        if all_time
        else aq.failure_groups(window, limit, offset, by_range=by_range)
    )
    if found:  # each row carries the window's totals
        distinct, failures, first_us = found[0][5:]
    else:  # past the last group, or none
        [(failures, distinct, first_us)] = yield aq.ranked_totals() if all_time else aq.failure_totals(window)
    start = _us(since) if since is not None else first_us
    end = _us(until) if until is not None else end_now
    width = bucket_width_us(start, end) if start is not None else 1_000_000
    buckets = -(-(end - start) // width) if start is not None else 0
    groups = []
    for row in found:
        groups.append((yield from _group(window, row[:5], start or 0, width, buckets)))
    return FailurePatterns(
        groups=groups,
        total_groups=int(distinct),
        total_failures=int(failures),
        trend_start=from_us(int(start)) if start is not None else None,
        trend_bucket_seconds=width // 1_000_000,
        offset=offset,
    )


def _few_failures(
    window: aq.Query, task_id: str | None, since: datetime | None, until: datetime | None
) -> ReadPlan[bool]:
    """Whether the window holds few enough failures to group them from its time range
    (aq.NARROW_WINDOW_FAILURES). One task's window is a range of ix_failures_task either way, and
    all of time is best walked in group order."""
    if task_id is not None or (since is None and until is None):
        return False
    [(held,)] = yield aq.failures_at_most(window, aq.NARROW_WINDOW_FAILURES)
    return int(held) < aq.NARROW_WINDOW_FAILURES


def _run_stats(
    task_id: str | None,
    task_type: str | None,
    since: datetime | None,
    until: datetime | None,
    group_by: str | None,
    workers: bool,
    limit: int,
) -> ReadPlan[TaskStats]:
    scope = aq.stats_filter(task_id, task_type, _us(since), _us(until), workers)
    counts = (
        aq.tallied_counts(task_id, task_type, workers, group_by)
        if since is None and until is None
        else aq.stats_counts(scope, group_by)
    )
    tallies = _tally((yield counts), grouped=group_by is not None)
    if group_by is None and not tallies:
        tallies[None] = _Tally()
    ranked = sorted(tallies.items(), key=lambda kv: (-kv[1].runs, str(kv[0])))[:limit]
    measured = sum(t.measured for t in tallies.values())
    top_level = task_id is None and task_type is None and group_by is None and not workers
    durations: dict[Any, dict[int, int]] = {}
    if task_id is not None or group_by == "task_id":  # one task per group: ix_exec_task_duration
        for key, t in ranked:
            durations[key] = yield from _indexed_percentiles(scope, group_by, key, t)
    elif top_level and ((since is None and until is None) or measured > SORT_AT_MOST):
        walk = aq.top_level_walk(_us(since), _us(until))  # ix_exec_top_duration
        for key, t in ranked:
            durations[key] = yield from _indexed_percentiles(walk, None, key, t)
    else:
        durations = _ranked_percentiles((yield aq.durations_ranked(scope, group_by)))
    groups = [t.stats(key, durations.get(key, {})) for key, t in ranked]
    return TaskStats(groups=groups, total_groups=len(tallies))


def _story(
    task_id: str | None, trace_id: str | None, until: datetime | None, limit: int, before: StepKey | None
) -> ReadPlan[Story]:
    column, key = ("trace_id", trace_id) if trace_id is not None else ("task_id", task_id or "")
    runs_before, events_before = bounds_before(before) if before is not None else (None, None)
    runs = yield aq.story_executions(column, key, _us(until), limit, runs_before)
    events = yield aq.story_events(column, key, _us(until), limit, events_before)
    [(runs_total, events_total)] = yield aq.story_counts(column, key, _us(until), runs_before, events_before)
    return Story(
        task_id=task_id,
        trace_id=trace_id,
        executions=[rows.execution_from(r[1:]) for r in reversed(runs)],
        events=[rows.event_from(r[1:]) for r in reversed(events)],
        # Capped totals still tell timeline_steps whether a kind was cut: COUNT_CAP is over
        # STORY_LIMIT_MAX, the most rows of a kind a story reads.
        executions_total=min(int(runs_total), aq.COUNT_CAP),
        events_total=min(int(events_total), aq.COUNT_CAP),
        totals_exact=max(int(runs_total), int(events_total)) <= aq.COUNT_CAP,
        execution_seqs=[int(r[0]) for r in reversed(runs)],
        event_seqs=[int(r[0]) for r in reversed(events)],
    )


def _side_effects(
    kind: str,
    value: str,
    since: datetime | None,
    until: datetime | None,
    task_id: str | None,
    limit: int,
    after: Any,
    digest: str,
) -> ReadPlan[SideEffectPage]:
    scope = aq.effects_filter(kind, value, _us(since), _us(until))
    found = yield aq.effects_page(scope, task_id, after, limit)
    [(counted,)] = yield aq.effects_count(scope, task_id)
    page = found[:limit]
    matches = [SideEffectMatch(kind=r[1], value=r[2], execution=rows.execution_from(r[3:])) for r in page]
    more = len(found) > limit and bool(page)

    def cursor_after(count: int) -> str:
        return _encode_cursor(to_us(matches[count - 1].execution.started_at), int(page[count - 1][0]), digest)

    return SideEffectPage(
        matches=matches,
        total=min(int(counted), aq.COUNT_CAP),
        total_exact=counted <= aq.COUNT_CAP,
        has_more=more,
        next_cursor=cursor_after(len(page)) if more else None,
    ).with_cursor_after(cursor_after)


# ---- failure groups ----------------------------------------------------------------------


def _group(
    window: aq.Query, row: Sequence[Any], start_us: int, width_us: int, buckets: int
) -> ReadPlan[FailureGroup]:
    fingerprint, count, first_us, last_us, fixed = row
    tasks = yield aq.group_members(window, fingerprint, "task_id")
    actors = [r for r in (yield aq.group_members(window, fingerprint, "actor")) if r[0] is not None]
    trend = [0] * max(buckets, 1)
    for bucket, n in (yield aq.group_trend(window, fingerprint, start_us, width_us)):
        trend[min(int(bucket), len(trend) - 1)] += int(n)
    [example] = yield aq.group_example(window, fingerprint)
    task_id, trace_id, span_id, started_us, error_type, message, stack, stack_hash, fixed_us = example
    return FailureGroup(
        fingerprint=fingerprint,
        error_type=error_type,
        message=normalize_message(message or ""),
        stack_hash=stack_hash,
        count=int(count),
        first_seen=from_us(int(first_us)),
        last_seen=from_us(int(last_us)),
        tasks_affected=len(tasks),
        tasks=[r[0] for r in tasks[:NAMED_MEMBERS]],
        actors_affected=len(actors),
        actors=[r[0] for r in actors[:NAMED_MEMBERS]],
        trend=trend,
        fixed_by_retry=int(fixed),
        example=FailureExample(
            task_id=task_id,
            trace_id=trace_id,
            span_id=span_id,
            started_at=from_us(int(started_us)),
            error_type=error_type,
            error_message=message or "",
            error_stack=stack,
            stack_hash=stack_hash,
            fixed_by_retry=fixed_us is not None,
        ),
    )


# ---- run statistics ----------------------------------------------------------------------


class _Tally:
    """Counts for one group, gathered from its (status, attempt) rows."""

    def __init__(self) -> None:
        self.by_status: dict[str, int] = defaultdict(int)
        self.succeeded_after: dict[str, int] = {}
        self.retries = 0
        self.measured = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost = 0.0

    @property
    def runs(self) -> int:
        return sum(self.by_status.values())

    def add(self, status: str, attempt: int, count: int, measured: int, tokens: Sequence[Any]) -> None:
        self.by_status[status] += count
        self.retries += count if attempt > 1 else 0
        self.measured += measured
        if status == "success":
            self.succeeded_after[str(attempt)] = self.succeeded_after.get(str(attempt), 0) + count
        self.input_tokens += int(tokens[0] or 0)
        self.output_tokens += int(tokens[1] or 0)
        self.cost += float(tokens[2] or 0)

    def stats(self, key: str | None, durations: dict[int, int]) -> RunStats:
        finished = self.runs - self.by_status["running"]
        return RunStats(
            key=key,
            runs=self.runs,
            **{s: self.by_status[s] for s in STATUSES},
            success_rate=_rate(self.by_status["success"], finished),
            retries=self.retries,
            retry_rate=_rate(self.retries, self.runs),
            succeeded_after=dict(sorted(self.succeeded_after.items(), key=lambda kv: int(kv[0]))),
            durations=DurationStats(
                measured=self.measured,
                p50_ms=durations.get(50),
                p95_ms=durations.get(95),
                p99_ms=durations.get(99),
            ),
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cost=round(self.cost, 6),
        )


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _tally(found: list[Any], *, grouped: bool) -> dict[Any, _Tally]:
    tallies: dict[Any, _Tally] = defaultdict(_Tally)
    for row in found:
        key, rest = (row[0], row[1:]) if grouped else (None, row)
        status, attempt, count, measured, *tokens = rest
        tallies[key].add(status, int(attempt), int(count), int(measured), tokens)
    return dict(tallies)


def _indexed_percentiles(
    scope: aq.Query, group_by: str | None, key: Any, tally: _Tally
) -> ReadPlan[dict[int, int]]:
    where, params = aq.in_group(scope, group_by, key)
    found: dict[int, int] = {}
    for p in PERCENTILES if tally.measured else ():
        rank = percentile_rank(tally.measured, p)
        [(value,)] = yield aq.duration_at_rank((where, params), rank, tally.measured)
        found[p] = int(value)
    return found


def _ranked_percentiles(found: list[Any]) -> dict[Any, dict[int, int]]:
    durations: dict[Any, dict[int, int]] = defaultdict(dict)
    for key, rank, count, value in found:
        for p in PERCENTILES:
            if percentile_rank(int(count), p) == int(rank):
                durations[key][p] = int(value)
    return durations


# ---- side-effect cursor ------------------------------------------------------------------


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:12]


def _encode_cursor(started_us: int, seq: int, digest: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([started_us, seq, digest]).encode()).decode().rstrip("=")


def _decode_cursor(token: str, digest: str) -> tuple[int, int]:
    try:
        started_us, seq, made_for = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        position = (cursor_int(started_us), cursor_int(seq))
    except (ValueError, TypeError, RecursionError) as exc:
        raise InvalidInput(
            "cursor",
            "is not a cursor this server issued",
            hint="Pass next_cursor from the previous page unchanged.",
        ) from exc
    if made_for != digest:
        raise InvalidInput(
            "cursor", "was issued for a different search", hint="Repeat the same arguments, or omit cursor."
        )
    return position
