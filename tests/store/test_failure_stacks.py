"""failure_stacks (store/sqlite/failure_stacks.py): the per-stack_hash counts that triggers keep
agree with a GROUP BY over the failed executions after every kind of write (start and finish,
record, retries, events, imports, prune, raw deletes), on both engines; the migration backfills
them; and tasks_last_failed over all time (read from them) answers exactly what the same call
over a window holding everything (read from the executions) answers."""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from every_write import T0, raw, write_every_kind

from store import Store
from store.models import LastFailed
from store.records import Retention
from store.retention import prune
from store.sqlite import derived
from store.sqlite import queries as q
from store.sqlite.schema import MIGRATIONS, migrate
from store.timeutil import from_us

STACKS_SQL = "SELECT per_task, task_id, stack_hash, n, first_us, last_us, last_seq FROM failure_stacks"
FAILED_SQL = "SELECT task_id, stack_hash, started_us, seq FROM executions WHERE status = 'failed'"


def expected_stacks(failed: list[tuple[Any, ...]]) -> set[tuple[Any, ...]]:
    """The groups computed in Python from the failed rows: count, first, last and latest seq."""
    groups: dict[tuple[Any, ...], list[tuple[int, int]]] = {}
    for task_id, stack_hash, started_us, seq in failed:
        for key in ((0, "", stack_hash), (1, task_id, stack_hash)):
            groups.setdefault(key, []).append((int(started_us), int(seq)))
    return {(*key, len(found), min(found)[0], max(found)[0], max(found)[1]) for key, found in groups.items()}


def assert_stacks_agree(database_url: str) -> None:
    stored = {
        tuple(int(v) if isinstance(v, int) else v for v in row) for row in raw(database_url, STACKS_SQL)
    }
    assert stored == expected_stacks(raw(database_url, FAILED_SQL))


async def test_the_counts_agree_with_the_failures_after_every_kind_of_write(
    store: Store, database_url: str
) -> None:
    await write_every_kind(store, lambda: assert_stacks_agree(database_url))


async def test_the_counts_follow_prune_and_raw_deletes(store: Store, database_url: str) -> None:
    await write_every_kind(store, lambda: None)
    cutoff = T0 + timedelta(minutes=4)
    report = await prune(store, Retention(success_before=cutoff, failed_before=cutoff, events_before=None))
    assert report.counts.executions > 0
    assert_stacks_agree(database_url)
    newest = "SELECT seq FROM executions WHERE status = 'failed' ORDER BY started_us DESC, seq DESC LIMIT 1"
    raw(database_url, f"DELETE FROM executions WHERE seq = ({newest})")  # a group's last and example
    assert_stacks_agree(database_url)
    oldest = "SELECT seq FROM executions WHERE status = 'failed' ORDER BY started_us, seq LIMIT 1"
    raw(database_url, f"DELETE FROM executions WHERE seq = ({oldest})")  # a group's first
    assert_stacks_agree(database_url)
    # One statement that empties whole groups (PostgreSQL runs its row triggers after it).
    raw(database_url, "DELETE FROM executions WHERE task_id IN ('job-1', 'retried')")
    assert_stacks_agree(database_url)
    raw(database_url, "UPDATE executions SET task_id = 'moved' WHERE task_id = 'job-2'")
    assert_stacks_agree(database_url)
    raw(database_url, "DELETE FROM executions")
    assert raw(database_url, STACKS_SQL) == []


def same_answer(a: LastFailed, b: LastFailed) -> None:
    assert a.model_dump() == b.model_dump()


@pytest.mark.parametrize("unique_errors", [False, True])
@pytest.mark.parametrize("task_id", [None, "job-1", "nobody"])
async def test_all_time_answers_equal_the_same_call_over_a_window_holding_everything(
    store: Store, unique_errors: bool, task_id: str | None
) -> None:
    await write_every_kind(store, lambda: None)
    for limit in (1, 3, 50):
        all_time = await store.last_failed(limit=limit, task_id=task_id, unique_errors=unique_errors)
        windowed = await store.last_failed(
            limit=limit, task_id=task_id, unique_errors=unique_errors,
            since=T0 - timedelta(days=30), until=datetime.now(UTC) + timedelta(days=1),
        )  # fmt: skip
        same_answer(all_time, windowed)
    if task_id != "nobody":
        assert all_time.total_failures > 0 and all_time.error_patterns


async def test_the_migration_backfills_the_counts_of_an_old_database(db_path: Path) -> None:
    async with await Store.open(str(db_path)) as store:
        await write_every_kind(store, lambda: None)
    with closing(sqlite3.connect(db_path, isolation_level=None)) as conn:
        before = set(conn.execute(STACKS_SQL))
        for statement in (
            "DROP TABLE failure_stacks",
            "DELETE FROM schema_migrations WHERE name = '0007_failure_stacks'",
            *(f"DROP TRIGGER {name}" for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'tr_failure_stacks%'"
            ).fetchall()),
            "DROP INDEX ix_exec_status_stack",
            "DROP INDEX ix_exec_task_status_stack",
            MIGRATIONS[2].statements[0],  # ix_exec_task_status, as 0003 made it
            next(s for s in MIGRATIONS[0].statements if "ix_exec_status " in s),
        ):  # fmt: skip
            conn.execute(statement)
        assert migrate(conn) == ["0007_failure_stacks"]
        assert set(conn.execute(STACKS_SQL)) == before
        derived.rebuild(conn)
        assert set(conn.execute(STACKS_SQL)) == before
    assert_stacks_agree(str(db_path))


def ranked_reference(where: str) -> str:
    """unique_errors as it was first written: a window over whole rows (the answer to keep)."""
    return (
        "SELECT span_id FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY stack_hash ORDER BY started_us DESC, "
        f"seq DESC) AS rn FROM executions WHERE {where}) AS ranked WHERE rn = 1 "
        "ORDER BY started_us DESC, seq DESC LIMIT ?"
    )


async def test_unique_errors_in_a_window_match_a_ranking_of_whole_rows_even_with_ties_and_no_hash(
    db_path: Path,
) -> None:
    """The windowed unique page comes from one scan of the window's groups (window_groups): it must
    answer what a ranking of whole rows answers, and its error patterns what the plain call's
    error_patterns query answers, also with hashless failures and a tie at the cut."""
    async with await Store.open(str(db_path)) as store:
        await write_every_kind(store, lambda: None)
    with closing(sqlite3.connect(db_path, isolation_level=None)) as conn:
        first_attempt = "SELECT * FROM executions WHERE status = 'failed' AND attempt = 1 LIMIT 1"
        template = conn.execute(first_attempt).fetchone()
        columns = [d[1] for d in conn.execute("PRAGMA table_info(executions)")]
        # Two hashless failures; two of "tied" started together (the later row is its latest). Then
        # two cuts of the page fall inside three groups that tie on their latest start, where the
        # latest row (the one to show) is once in the group whose hash sorts last ("twirl"), once
        # in the one whose hash sorts first ("alpha"): groups tied at a cut must all be weighed.
        # Twenty older groups of two come first by count, so none of these is also a pattern.
        common = [(f"common-{k}", -1_000 - k) for k in range(20) for _ in range(2)]
        raw_rows = (
            *common, (None, 0), (None, 0), ("first", 4), ("tied", 3), ("tied", 3), ("twin", 3), ("twirl", 3),
            ("zulu", 2), ("yankee", 2), ("alpha", 2),
        )  # fmt: skip
        for n, (stack_hash, offset) in enumerate(raw_rows):
            row = dict(zip(columns, template, strict=True)) | {
                "seq": None, "span_id": str(uuid.uuid4()), "execution_id": f"raw-{n}",
                "idempotency_key": None,
                "stack_hash": stack_hash, "started_us": 1_800_000_000_000_000 + offset, "ended_us": None,
            }  # fmt: skip
            conn.execute(
                f"INSERT INTO executions ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                list(row.values()),
            )
    since, until = from_us(0), from_us(2_000_000_000_000_000)
    async with await Store.open(str(db_path)) as store:
        for task_id in (None, "job-1"):
            where, params = q._failure_window(task_id, 0, 2_000_000_000_000_000)
            plain = await store.last_failed(limit=5, task_id=task_id, since=since, until=until)
            for limit in (1, 2, 3, 5, 50):
                with closing(sqlite3.connect(db_path)) as conn:
                    expected = [r[0] for r in conn.execute(ranked_reference(where), [*params, limit + 1])]
                unique = await store.last_failed(
                    limit=limit, task_id=task_id, since=since, until=until, unique_errors=True
                )
                got = [f.execution.span_id for f in unique.failures]
                assert got == expected[:limit] and unique.has_more == (len(expected) > limit)
                assert unique.error_patterns == plain.error_patterns
                assert (unique.total_failures, unique.patterns_total) == (
                    plain.total_failures, plain.patterns_total,
                )  # fmt: skip
            if task_id is None:  # the raw rows are in it: tied groups and a hashless one
                assert "tied" in {p.stack_hash for p in plain.error_patterns}
                assert len(plain.error_patterns) < plain.patterns_total  # the patterns were cut
