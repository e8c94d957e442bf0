"""run_tallies (store/sqlite/run_tallies.py): the per-(child, task, type, actor, status, attempt)
counts that triggers keep agree with a count of the executions, made here in Python, after every
kind of write (start and finish, record, retries, workers, child work, events, imports, prune,
raw updates and deletes), on both engines; the migration backfills them; and tasks_stats over all
time (read from them) answers exactly what the same call over a window holding everything (counted
from the executions) answers."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from every_write import T0, assert_remigrated, raw, unmigrate, write_every_kind

from store import Store
from store.models import (
    USAGE_MAX,
    EventRequest,
    ExecutionFilter,
    FinishRequest,
    RecordRequest,
    StartRequest,
    Usage,
)
from store.records import Retention
from store.retention import prune
from store.sqlite import analysis_queries as aq

TALLIES_SQL = (
    "SELECT child, task_id, task_type_key, actor_key, status, attempt, runs, measured, input_tokens, "
    "output_tokens, cost FROM run_tallies"
)
EXECUTIONS_SQL = (
    "SELECT worker_id, parent_span_id, task_id, task_type, actor, status, attempt, duration_ms, "
    "input_tokens, output_tokens, cost FROM executions"
)


def key_text(value: str | None) -> str:
    return "" if value is None else f"={value}"


def expected_tallies(found: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """The tallies counted in Python from the execution rows."""
    sums: dict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [0, 0, 0, 0, 0.0])
    for (
        worker,
        parent,
        task_id,
        task_type,
        actor,
        status,
        attempt,
        duration,
        tokens_in,
        tokens_out,
        cost,
    ) in found:
        child = 0 if worker is None and parent is None else 1
        tally = sums[(child, task_id, key_text(task_type), key_text(actor), status, int(attempt))]
        tally[0] += 1
        tally[1] += duration is not None
        tally[2] += int(tokens_in or 0)
        tally[3] += int(tokens_out or 0)
        tally[4] += float(cost or 0)
    return {key: (*counts[:4], round(counts[4], 6)) for key, counts in sums.items()}


def stored_tallies(database_url: str) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    stored = {}
    for *key, runs, measured, tokens_in, tokens_out, cost in raw(database_url, TALLIES_SQL):
        key[0], key[5] = int(key[0]), int(key[5])
        stored[tuple(key)] = (
            int(runs),
            int(measured),
            int(tokens_in),
            int(tokens_out),
            round(float(cost), 6),
        )
    return stored


def assert_tallies_agree(database_url: str) -> None:
    assert stored_tallies(database_url) == expected_tallies(raw(database_url, EXECUTIONS_SQL))


async def write_what_statistics_count(store: Store, check: Any) -> None:
    """Runs with and without a type and an actor, tokens and cost, every status, a worker under an
    evented task, child work under a run, and a run left running."""
    for n, (status, task_type, actor) in enumerate(
        [
            ("success", "build", "ci"),
            ("partial", "build", None),
            ("cancelled", None, "ci"),
            ("success", None, None),
        ]
    ):
        usage = Usage(input_tokens=100 + n, output_tokens=10 * n, cost=0.125 * n)
        await store.record(
            RecordRequest(
                task_id="tallied", task_type=task_type, actor=actor, status=status, usage=usage,
                started_at=T0 + timedelta(hours=n), ended_at=T0 + timedelta(hours=n, seconds=n),
            )
        )  # fmt: skip
    check()
    parent = (await store.start(StartRequest(task_id="tallied", actor="ci"))).execution
    child = (await store.start(StartRequest(task_id="tallied", parent_span_id=parent.span_id))).execution
    check()
    await store.finish(FinishRequest(span_id=child.span_id, status="success", usage=Usage(input_tokens=7)))
    await store.finish(FinishRequest(span_id=parent.span_id, status="success", usage=Usage(cost=0.5)))
    check()
    for event_type, data in (
        ("task_started", {}),
        ("worker_spawned", {"worker_id": "w-1", "worker_type": "builder"}),
        ("worker_completed", {"worker_id": "w-1"}),
    ):
        await store.log_event(EventRequest(event_type=event_type, task_id="evented-worker", data=data))
    check()
    await store.start(StartRequest(task_id="tallied", task_type="build"))  # stays running
    check()


async def test_the_tallies_agree_with_the_executions_after_every_kind_of_write(
    store: Store, database_url: str
) -> None:
    check = lambda: assert_tallies_agree(database_url)  # noqa: E731
    await write_every_kind(store, check)
    await write_what_statistics_count(store, check)
    assert len(stored_tallies(database_url)) > 10


async def test_the_tallies_follow_prune_and_raw_updates_and_deletes(store: Store, database_url: str) -> None:
    await write_every_kind(store, lambda: None)
    await write_what_statistics_count(store, lambda: None)
    before = stored_tallies(database_url)
    raw(database_url, "UPDATE executions SET result = 'changed', task_slug = 'other'")  # no tallied column
    assert stored_tallies(database_url) == before
    cutoff = T0 + timedelta(minutes=4)
    report = await prune(store, Retention(success_before=cutoff, failed_before=cutoff, events_before=None))
    assert report.counts.executions > 0
    assert_tallies_agree(database_url)
    for statement in (
        "UPDATE executions SET actor = 'moved' WHERE actor IS NULL AND task_id = 'tallied'",
        "UPDATE executions SET task_type = NULL WHERE task_type = 'build'",
        "UPDATE executions SET status = 'cancelled' WHERE status = 'partial'",
        "UPDATE executions SET worker_id = 'w-9' WHERE task_id = 'job-0'",
        "UPDATE executions SET cost = 2.5, input_tokens = NULL, duration_ms = NULL WHERE task_id = 'job-1'",
        "DELETE FROM executions WHERE task_id IN ('retried', 'imported')",  # one statement, whole tallies
    ):
        raw(database_url, statement)
        assert_tallies_agree(database_url)
    raw(database_url, "DELETE FROM executions")
    assert raw(database_url, TALLIES_SQL) == []


SCOPES = [
    {},
    {"task_id": "tallied"},
    {"task_id": "job-0"},
    {"task_type": "build"},
    {"group_by": "task_id"},
    {"group_by": "task_type"},
    {"group_by": "actor"},
    {"task_id": "tallied", "group_by": "actor"},
    {"workers": True},
    {"workers": True, "group_by": "task_id"},
    {"task_id": "nobody"},
]


@pytest.mark.parametrize("scope", SCOPES, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()) or "all")
async def test_all_time_statistics_equal_the_same_call_over_a_window_holding_everything(
    store: Store, scope: dict[str, Any]
) -> None:
    await write_every_kind(store, lambda: None)
    await write_what_statistics_count(store, lambda: None)
    everything = {"since": T0 - timedelta(days=30), "until": datetime.now(UTC) + timedelta(days=1)}
    for limit in (1, 20):
        all_time = await store.stats(limit=limit, **scope)
        windowed = await store.stats(limit=limit, **scope, **everything)
        assert all_time.model_dump() == windowed.model_dump()
    if scope.get("task_id") != "nobody":
        assert sum(g.runs for g in all_time.groups) > 0


async def test_all_time_counts_read_the_tallies_not_the_executions(db_path: Path) -> None:
    async with await Store.open(str(db_path)):
        pass  # the schema, migrated
    with closing(sqlite3.connect(db_path)) as conn:
        for args in (
            (None, None, False, None),
            ("t", None, False, "actor"),
            (None, "build", True, "task_type"),
        ):
            sql, params = aq.tallied_counts(*args)
            plan = " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
            assert "run_tallies" in plan and "executions" not in plan, plan
        sql, params = aq.tallied_counts("t", None, False, None)
        plan = " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
        assert "SEARCH run_tallies USING" in plan, plan  # the task's rows by the primary key


async def test_the_migration_backfills_the_tallies_of_an_old_database(db_path: Path) -> None:
    async with await Store.open(str(db_path)) as store:
        await write_every_kind(store, lambda: None)
        await write_what_statistics_count(store, lambda: None)
    assert_remigrated(db_path, "run_tallies", "0012_run_tallies", TALLIES_SQL)
    assert_tallies_agree(str(db_path))


async def test_the_migration_counts_runs_stored_past_the_usage_cap_as_the_cap(db_path: Path) -> None:
    """Two runs of 2**62 tokens (allowed before the cap) would overflow a 64-bit sum and stop the
    store from opening; the tallies count each as USAGE_MAX, as the windowed sums do."""
    async with await Store.open(str(db_path)) as store:
        await write_what_statistics_count(store, lambda: None)
    with closing(sqlite3.connect(db_path, isolation_level=None)) as conn:
        conn.execute("UPDATE executions SET input_tokens = ? WHERE task_id = 'tallied'", (2**62,))
        unmigrate(conn, "run_tallies", "0012_run_tallies")
    async with await Store.open(str(db_path)) as store:
        [group] = (await store.stats(task_id="tallied")).groups
        runs = (await store.list_executions(ExecutionFilter(task_id="tallied"), limit=100)).executions
        assert group.input_tokens == USAGE_MAX * sum(
            1 for e in runs if e.worker_id is None and e.parent_span_id is None
        )
