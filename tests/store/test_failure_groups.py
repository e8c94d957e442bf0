"""failure_groups (store/sqlite/failure_groups.py): the per-fingerprint counts that triggers on
`failures` keep agree with a count of the failures, made here in Python, after every kind of write
(failures, retries that fix them, events, imports, prune, raw updates and deletes), on both
engines; the migration backfills them; and tasks_failure_patterns over all time (ranked from them)
answers what the same call over a window holding everything (grouped from the failures) answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from every_write import T0, assert_remigrated, error, raw, write_every_kind

from store import Store
from store.models import FinishRequest, StartRequest
from store.records import Retention
from store.retention import prune

GROUPS_SQL = "SELECT fingerprint, n, first_us, last_us, fixed FROM failure_groups"
FAILURES_SQL = "SELECT fingerprint, started_us, fixed_us FROM failures"


def expected_groups(found: list[tuple[Any, ...]]) -> set[tuple[Any, ...]]:
    groups: dict[str, list[tuple[int, bool]]] = {}
    for fingerprint, started_us, fixed_us in found:
        groups.setdefault(fingerprint, []).append((int(started_us), fixed_us is not None))
    return {
        (key, len(rows), min(r[0] for r in rows), max(r[0] for r in rows), sum(r[1] for r in rows))
        for key, rows in groups.items()
    }


def stored_groups(database_url: str) -> set[tuple[Any, ...]]:
    return {
        (f, int(n), int(first), int(last), int(fixed))
        for f, n, first, last, fixed in raw(database_url, GROUPS_SQL)
    }


def assert_groups_agree(database_url: str) -> None:
    assert stored_groups(database_url) == expected_groups(raw(database_url, FAILURES_SQL))


async def retry_until_fixed(store: Store, task_id: str) -> None:
    """Two failed attempts of one trace, then a success that fixes both."""
    first = (await store.start(StartRequest(task_id=task_id))).execution
    await store.finish(FinishRequest(span_id=first.span_id, status="failed", error=error(0, 7)))
    second = (await store.start(StartRequest(task_id=task_id, retry_of=first.span_id))).execution
    await store.finish(FinishRequest(span_id=second.span_id, status="failed", error=error(0, 8)))
    third = (await store.start(StartRequest(task_id=task_id, retry_of=second.span_id))).execution
    await store.finish(FinishRequest(span_id=third.span_id, status="success"))


async def test_the_groups_agree_with_the_failures_after_every_kind_of_write(
    store: Store, database_url: str
) -> None:
    await write_every_kind(store, lambda: assert_groups_agree(database_url))
    await retry_until_fixed(store, "fixed-later")
    assert_groups_agree(database_url)
    assert any(fixed for *_, fixed in stored_groups(database_url))


async def test_the_groups_follow_prune_and_raw_updates_and_deletes(store: Store, database_url: str) -> None:
    await write_every_kind(store, lambda: None)
    await retry_until_fixed(store, "fixed-later")
    cutoff = T0 + timedelta(minutes=4)
    report = await prune(store, Retention(success_before=cutoff, failed_before=cutoff, events_before=None))
    assert report.counts.executions > 0
    assert_groups_agree(database_url)
    newest = "SELECT seq FROM executions WHERE status = 'failed' ORDER BY started_us DESC, seq DESC LIMIT 1"
    oldest = "SELECT seq FROM executions WHERE status = 'failed' ORDER BY started_us, seq LIMIT 1"
    for statement in (
        f"DELETE FROM executions WHERE seq = ({newest})",  # a group's last (the foreign key cascades)
        f"DELETE FROM executions WHERE seq = ({oldest})",  # a group's first
        "UPDATE failures SET fixed_us = NULL WHERE fixed_us IS NOT NULL",
        "UPDATE failures SET started_us = started_us + 1000000 WHERE task_id = 'job-1'",
        "UPDATE failures SET fingerprint = 'moved' WHERE task_id = 'job-2'",
        "DELETE FROM executions WHERE task_id IN ('job-1', 'retried')",  # one statement, whole groups
    ):
        raw(database_url, statement)
        assert_groups_agree(database_url)
    raw(database_url, "DELETE FROM executions")
    assert raw(database_url, GROUPS_SQL) == []


def without_trend(found: Any) -> list[dict[str, Any]]:
    """The groups as both reads answer them: the trend's buckets start at the window's start."""
    return [group.model_dump(exclude={"trend"}) for group in found.groups]


@pytest.mark.parametrize("offset", [0, 2, 50])
async def test_all_time_patterns_equal_the_same_call_over_a_window_holding_everything(
    store: Store, offset: int
) -> None:
    await write_every_kind(store, lambda: None)
    await retry_until_fixed(store, "fixed-later")
    everything = {"since": T0 - timedelta(days=30), "until": datetime.now(UTC) + timedelta(days=1)}
    for limit in (1, 3, 20):
        all_time = await store.failure_patterns(limit=limit, offset=offset)
        windowed = await store.failure_patterns(limit=limit, offset=offset, **everything)
        assert without_trend(all_time) == without_trend(windowed)
        assert (all_time.total_groups, all_time.total_failures) == (
            windowed.total_groups,
            windowed.total_failures,
        )
        assert [sum(g.trend) for g in all_time.groups] == [g.count for g in all_time.groups]
    if offset == 0:
        assert all_time.groups and any(
            g.fixed_by_retry for g in (await store.failure_patterns(limit=20)).groups
        )


async def test_the_migration_backfills_the_groups_of_an_old_database(db_path: Path) -> None:
    async with await Store.open(str(db_path)) as store:
        await write_every_kind(store, lambda: None)
        await retry_until_fixed(store, "fixed-later")
    assert_remigrated(db_path, "failure_groups", "0013_failure_groups", GROUPS_SQL)
    assert_groups_agree(str(db_path))
