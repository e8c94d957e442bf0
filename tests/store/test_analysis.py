"""The debugging reads (store.analysis): failure groups by fingerprint, run statistics with
percentiles, timelines, and the side-effect index kept at write time. Each test runs on SQLite
and, when configured, PostgreSQL (the `store` fixture)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from store import InvalidInput, Store
from store.admin import copy_history
from store.analysis import failure_fingerprint, percentile_rank, timeline_steps
from store.models import ErrorInput, EventRequest, Execution, IOEffects, RecordRequest, Usage
from store.sqlite import analysis_reads

T0 = datetime(2025, 11, 1, tzinfo=UTC)
STACK = 'Traceback (most recent call last):\n  File "/srv/app/jobs/load.py", line 12, in run\nKeyError: x'
OTHER_STACK = (
    'Traceback (most recent call last):\n  File "/srv/app/jobs/save.py", line 40, in save\nKeyError: x'
)


async def record(
    store: Store, task_id: str, minute: float, status: str = "success", *, seconds: float = 5, **extra: Any
) -> Execution:
    start = T0 + timedelta(minutes=minute)
    req = RecordRequest(
        task_id=task_id, status=status, started_at=start, ended_at=start + timedelta(seconds=seconds), **extra
    )  # type: ignore[arg-type]
    return (await store.record(req)).execution


def failed(
    message: str = "user 42 missing", stack: str | None = STACK, kind: str = "KeyError"
) -> dict[str, Any]:
    return {"status": "failed", "error": ErrorInput(type=kind, message=message, stack=stack)}


# ---- failure groups ----------------------------------------------------------------------


async def test_failures_that_differ_only_in_ids_are_one_group_and_other_messages_are_not(
    store: Store,
) -> None:
    for minute, user in enumerate((1, 22, 333)):
        await record(store, "load", minute, **failed(f"user {user} missing"))
    await record(store, "load", 10, **failed("disk full"))
    await record(store, "load", 11, **failed("user 9 missing", stack=OTHER_STACK))
    patterns = await store.failure_patterns()
    assert patterns.total_failures == 5 and patterns.total_groups == 3
    top = patterns.groups[0]
    assert (top.count, top.message, top.error_type) == (3, "user <n> missing", "KeyError")
    assert top.fingerprint == failure_fingerprint("KeyError", "user 1 missing", top.stack_hash)
    assert top.first_seen == T0 and top.last_seen == T0 + timedelta(minutes=2)
    assert sorted(g.count for g in patterns.groups) == [1, 1, 3]


async def test_a_group_names_its_tasks_and_actors_and_its_trend_adds_up(store: Store) -> None:
    for minute in range(6):
        await record(store, f"task-{minute % 3}", minute * 60, actor=f"agent-{minute % 2}", **failed())
    [group] = (await store.failure_patterns(since=T0, until=T0 + timedelta(hours=6))).groups
    assert group.tasks_affected == 3 and set(group.tasks) == {"task-0", "task-1", "task-2"}
    assert group.actors_affected == 2 and set(group.actors) == {"agent-0", "agent-1"}
    assert sum(group.trend) == group.count == 6 and len(group.trend) == 12
    assert group.trend[0] == 1 and group.trend[-2] == 1  # hour 0 and hour 5 of a 6-hour window
    assert group.example.started_at == T0 + timedelta(hours=5)


async def test_one_tasks_group_names_only_the_actors_of_its_own_failures(store: Store) -> None:
    actors = ["agent-b", "agent-a", "agent-b", None, "agent-c", "agent-b", "agent-a"]
    for minute, actor in enumerate(actors):
        await record(store, "mine", minute, actor=actor, **failed())
    for minute in range(4):  # the same failure elsewhere, by an actor "mine" never had
        await record(store, "theirs", 10 + minute, actor=f"agent-{'bz'[minute % 2]}", **failed())
    [group] = (await store.failure_patterns(task_id="mine")).groups
    assert group.count == 7 and group.tasks == ["mine"]
    assert group.actors_affected == 3 and group.actors == ["agent-b", "agent-a", "agent-c"]
    [window] = (await store.failure_patterns(task_id="mine", since=T0 + timedelta(minutes=3))).groups
    assert window.actors_affected == 3 and window.actors == ["agent-a", "agent-b", "agent-c"]


async def test_a_failure_fixed_by_a_later_retry_is_counted_either_way_round(store: Store) -> None:
    first = await record(store, "flaky", 0, **failed())
    await record(store, "flaky", 1, retry_of=first.span_id)
    lonely = await record(store, "broken", 2, **failed())
    [group] = (await store.failure_patterns()).groups
    assert group.fixed_by_retry == 1 and group.count == 2
    assert group.example.span_id == lonely.span_id and not group.example.fixed_by_retry
    # A failed attempt recorded after the success that retried it (an import) is fixed too.
    retried = await record(store, "late", 3, **failed())
    await record(store, "late", 5, retry_of=retried.span_id)
    assert (await store.failure_patterns(task_id="late")).groups[0].fixed_by_retry == 1


async def test_a_retry_that_succeeded_in_the_same_microsecond_fixed_the_failure(store: Store) -> None:
    # A task breakdown import starts every attempt at one started_at; only the attempt orders them.
    first = await record(store, "same-instant", 0, **failed())
    await record(store, "same-instant", 0, retry_of=first.span_id)
    [group] = (await store.failure_patterns(task_id="same-instant")).groups
    assert group.fixed_by_retry == 1 and group.example.fixed_by_retry
    # The retried failure itself fixes nothing: a failure and a later failure of the same instant.
    second = await record(store, "still-broken", 0, **failed())
    await record(store, "still-broken", 0, retry_of=second.span_id, **failed())
    [group] = (await store.failure_patterns(task_id="still-broken")).groups
    assert (group.count, group.fixed_by_retry) == (2, 0)


async def test_migration_0010_recomputes_the_fixes_an_older_rule_missed(tmp_path: Path) -> None:
    path = tmp_path / "old-rule.db"
    async with await Store.open(str(path)) as store:
        first = await record(store, "same-instant", 0, **failed())
        await record(store, "same-instant", 0, retry_of=first.span_id)
    with sqlite3.connect(path) as conn:  # what the rule before 0010 had left: no fix, no ledger row
        conn.execute("UPDATE failures SET fixed_us = NULL")
        conn.execute("DELETE FROM schema_migrations WHERE name = '0010_fixed_by_later_attempt'")
    async with await Store.open(str(path)) as store:
        [group] = (await store.failure_patterns()).groups
        assert group.fixed_by_retry == 1


async def test_patterns_page_with_an_offset_and_filter_by_task(store: Store) -> None:
    for n in range(5):
        for k in range(n + 1):
            await record(store, "t", n * 10 + k, **failed(f"error kind {'abcde'[n]}", kind=f"E{n}"))
    first = await store.failure_patterns(limit=2)
    rest = await store.failure_patterns(limit=2, offset=2)
    assert [g.count for g in first.groups + rest.groups] == [5, 4, 3, 2]
    past = await store.failure_patterns(limit=2, offset=7)  # no group on the page: totals still told
    for page in (first, rest, past):
        assert (page.total_groups, page.total_failures, page.trend_start) == (5, 15, T0)
    assert past.groups == [] and past.offset == 7
    window = await store.failure_patterns(since=T0 + timedelta(minutes=20), until=T0 + timedelta(minutes=40))
    assert (window.total_groups, window.total_failures, [g.count for g in window.groups]) == (2, 7, [4, 3])
    assert (await store.failure_patterns(task_id="nobody")).total_failures == 0
    with pytest.raises(InvalidInput):
        await store.failure_patterns(limit=51)


# ---- statistics --------------------------------------------------------------------------


async def test_stats_count_outcomes_retries_and_tokens(store: Store) -> None:
    first = await record(store, "job", 0, **failed(), usage=Usage(input_tokens=10, output_tokens=2, cost=0.5))
    await record(store, "job", 1, retry_of=first.span_id, usage=Usage(input_tokens=5, output_tokens=1))
    await record(store, "job", 2, status="partial")
    await record(store, "job", 3)
    [row] = (await store.stats(task_id="job")).groups
    assert (row.runs, row.success, row.failed, row.partial, row.running) == (4, 2, 1, 1, 0)
    assert row.success_rate == 0.5 and row.retries == 1 and row.retry_rate == 0.25
    assert row.succeeded_after == {"1": 1, "2": 1}
    assert (row.input_tokens, row.output_tokens, row.cost) == (15, 3, 0.5)


@pytest.mark.parametrize("runs", [1, 2, 7, 100])
async def test_percentiles_are_the_nearest_rank_on_every_path(
    store: Store, runs: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    durations = [(n * 37) % 101 + 1 for n in range(runs)]  # seconds, in no particular order
    for minute, seconds in enumerate(durations):
        await record(store, "job", minute, seconds=seconds, task_type="batch")
    ordered = sorted(d * 1000 for d in durations)
    want = [ordered[percentile_rank(runs, p)] for p in (50, 95, 99)]
    since = T0 - timedelta(days=1)
    found = [
        (await store.stats(task_id="job")).groups[0].durations,  # ix_exec_task_duration
        (await store.stats(task_type="batch")).groups[0].durations,  # the window-function sort
        (await store.stats()).groups[0].durations,  # ix_exec_top_duration
        (await store.stats(since=since)).groups[0].durations,  # a small window: sorted
    ]
    monkeypatch.setattr(analysis_reads, "SORT_AT_MOST", 0)
    found.append((await store.stats(since=since)).groups[0].durations)  # a wide one: the index walk
    for d in found:
        assert d.measured == runs and [d.p50_ms, d.p95_ms, d.p99_ms] == want


# Nearest rank by hand: the ceil(p * n / 100)-th smallest (1-based) of n = 1, 2, 3 and 100 runs.
HAND_RANKED = {
    1: (1, 1, 1),  # the only run for every percentile
    2: (1, 2, 2),  # ceil(1.0) = 1st; ceil(1.9) = 2nd; ceil(1.98) = 2nd: p99 of two is the slower
    3: (2, 3, 3),  # ceil(1.5) = 2nd; ceil(2.85) = 3rd; ceil(2.97) = 3rd
    100: (50, 95, 99),  # ceil(50) = 50th; 95th; 99th
}


@pytest.mark.parametrize("runs", sorted(HAND_RANKED))
async def test_percentiles_match_a_hand_computed_nearest_rank(store: Store, runs: int) -> None:
    for minute in range(runs):  # run k (1-based) takes k seconds, recorded slowest first
        await record(store, "job", minute, seconds=runs - minute, task_type="batch")
    want = [k * 1000 for k in HAND_RANKED[runs]]
    assert [percentile_rank(runs, p) + 1 for p in (50, 95, 99)] == list(HAND_RANKED[runs])
    for stats in (
        await store.stats(task_id="job"),
        await store.stats(task_type="batch"),
        await store.stats(),
        await store.stats(group_by="actor"),
    ):
        d = stats.groups[0].durations
        assert d.measured == runs and [d.p50_ms, d.p95_ms, d.p99_ms] == want


@pytest.mark.parametrize("group_by", ["actor", "task_type"])
async def test_one_tasks_groups_each_have_their_own_percentiles(store: Store, group_by: str) -> None:
    runs = {"a": (0.1, 0.2), "b": (10, 20, 30), None: (5,)}  # seconds, by actor (and task_type)
    minute = 0
    for key, durations in runs.items():
        for seconds in durations:
            await record(store, "job", minute, seconds=seconds, **{group_by: key})
            minute += 1
    await record(store, "other-task", 99, seconds=500, **{group_by: "b"})  # another task's run
    grouped = {g.key: g.durations for g in (await store.stats(task_id="job", group_by=group_by)).groups}
    for key, durations in runs.items():
        ordered = sorted(int(s * 1000) for s in durations)
        want = [ordered[percentile_rank(len(ordered), p)] for p in (50, 95, 99)]
        got = grouped[key]
        assert got.measured == len(ordered) and [got.p50_ms, got.p95_ms, got.p99_ms] == want, key


async def test_stats_group_by_task_most_runs_first_and_workers_apart(store: Store) -> None:
    for minute in range(3):
        await record(store, "busy", minute, actor="a")
    await record(store, "quiet", 5, actor="b", **failed())
    grouped = await store.stats(group_by="task_id")
    assert [(g.key, g.runs) for g in grouped.groups] == [("busy", 3), ("quiet", 1)]
    assert grouped.total_groups == 2 and (await store.stats(group_by="task_id", limit=1)).total_groups == 2
    assert [g.key for g in (await store.stats(group_by="actor")).groups] == ["a", "b"]
    assert (await store.stats(workers=True)).groups[0].runs == 0
    assert (await store.stats(task_id="nobody")).groups[0].runs == 0


async def test_worker_runs_are_counted_apart_from_the_tasks_own(store: Store) -> None:
    await store.log_event(EventRequest(event_type="task_started", task_id="t", ts=T0))
    worker = {"worker_id": "w-1", "worker_type": "scan"}
    await store.log_event(EventRequest(event_type="worker_started", task_id="t", data=worker, ts=T0))
    await store.log_event(EventRequest(event_type="worker_completed", task_id="t", data=worker, ts=T0))
    assert (await store.stats(task_id="t")).groups[0].runs == 1
    assert (await store.stats(task_id="t", workers=True)).groups[0].success == 1


async def test_child_work_started_under_a_run_is_counted_apart_as_workers_are(store: Store) -> None:
    parent = await record(store, "t", 0, seconds=60, **failed())
    await record(store, "t", 0.5, seconds=10, parent_span_id=parent.span_id)  # a sub-step, no worker_id
    [own] = (await store.stats(task_id="t")).groups
    assert (own.runs, own.success, own.failed, own.success_rate) == (1, 0, 1, 0.0)
    assert own.durations.p50_ms == 60_000
    [children] = (await store.stats(task_id="t", workers=True)).groups
    assert (children.runs, children.success, children.durations.p50_ms) == (1, 1, 10_000)
    [everything] = (await store.stats()).groups  # the all-tasks walk of ix_exec_top_duration too
    assert everything.runs == 1 and everything.durations.p99_ms == 60_000


# ---- timeline ----------------------------------------------------------------------------


async def test_a_story_merges_runs_and_events_in_time_order_with_gaps(store: Store) -> None:
    at = T0 + timedelta(seconds=30)
    await store.log_event(EventRequest(event_type="task_created", task_id="t", ts=T0))
    await store.log_event(EventRequest(event_type="task_started", task_id="t", actor="m", ts=at))
    handoff = {"handoff_id": "h-1", "to_master": "dev"}
    await store.log_event(EventRequest(event_type="handoff_created", task_id="t", data=handoff, ts=at))
    story = await store.story(task_id="t")
    steps = timeline_steps(story)
    assert [s.name for s in steps] == ["task_created", "task_started", "handoff_created", "run"]
    assert steps[1].gap_ms == 30_000 and steps[0].gap_ms is None
    assert steps[2].note == "handoff_id=h-1, to_master=dev"
    assert (
        await store.story(trace_id=story.executions[0].trace_id)
    ).events_total == 3  # the trace opens at task_created
    assert (await store.story(task_id="t", until=at)).events_total == 1


@pytest.mark.parametrize("gap_ms", [1, 1_001, 1_003, 86_400_001])
async def test_a_gap_is_the_exact_whole_milliseconds_between_steps(store: Store, gap_ms: int) -> None:
    first = T0 + timedelta(milliseconds=1)
    for ts in (first, first + timedelta(milliseconds=gap_ms)):
        await store.log_event(EventRequest(event_type="task_created", task_id="gaps", ts=ts))
    steps = timeline_steps(await store.story(task_id="gaps"))
    assert [s.gap_ms for s in steps] == [None, gap_ms]  # float seconds * 1000 gave 1,000 for 1,001


async def test_a_story_needs_exactly_one_of_task_and_trace(store: Store) -> None:
    for bad in ({}, {"task_id": "t", "trace_id": "x"}):
        with pytest.raises(InvalidInput):
            await store.story(**bad)


# ---- side effects ------------------------------------------------------------------------


async def test_side_effects_find_files_directories_and_tools(store: Store) -> None:
    io = IOEffects(files_written=["reports/2025/a.json", "notes.md"], tool_calls=["grep", "bash"])
    wrote = await record(store, "writer", 0, io=io)
    await record(store, "other", 1, io=IOEffects(files_written=["reports/b.json"]))
    assert [m.execution.span_id for m in (await store.side_effects("file", "notes.md")).matches] == [
        wrote.span_id
    ]
    assert (await store.side_effects("dir", "reports/")).total == 2
    assert (await store.side_effects("dir", "reports/2025/")).total == 1
    assert (await store.side_effects("tool", "grep")).matches[0].value == "grep"
    assert (await store.side_effects("tool", "grep", task_id="other")).total == 0


async def test_side_effects_page_newest_first_with_a_cursor(store: Store) -> None:
    for minute in range(5):
        await record(store, "w", minute, io=IOEffects(files_written=["out.txt"]))
    seen, cursor = [], None
    while True:
        page = await store.side_effects("file", "out.txt", limit=2, cursor=cursor)
        seen += [m.execution.started_at for m in page.matches]
        if not page.has_more:
            break
        cursor = page.next_cursor
    assert seen == sorted(seen, reverse=True) and len(seen) == 5
    with pytest.raises(InvalidInput):
        await store.side_effects("file", "other.txt", cursor=page.next_cursor or cursor)


async def test_a_copied_history_keeps_its_failure_groups_and_side_effects(
    database_url: str, tmp_path: Path
) -> None:
    source_url = str(tmp_path / "source.db")
    async with await Store.open(source_url) as source:
        first = await record(source, "flaky", 0, **failed(), io=IOEffects(files_written=["out/a.txt"]))
        await record(source, "flaky", 1, retry_of=first.span_id)
    await copy_history(source_url, database_url)
    async with await Store.open(database_url) as target:
        [group] = (await target.failure_patterns()).groups
        assert group.count == 1 and group.fixed_by_retry == 1
        assert (await target.side_effects("dir", "out/")).total == 1
