"""Schema migrations: an ordered, named, append-only list, each applied in one transaction with
the ledger row that records it. Fresh databases get all of them, old ones are upgraded at open,
and a migration that fails leaves the schema and the ledger as they were."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from store import Store
from store.models import ExecutionFilter, FinishRequest, StartRequest
from store.sqlite.schema import MIGRATIONS, Migration, migrate

NAMES = [m.name for m in MIGRATIONS]
OLD_SPAN = "5f0c3a4e-8d2b-4c1e-9a7f-0b6d2e4f8a1c"
OLD_TRACE = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"


@pytest.fixture
def raw(db_path: Path) -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(db_path, isolation_level=None)) as conn:
        yield conn


def ledger(conn: sqlite3.Connection) -> list[tuple[str, int]]:
    return list(conn.execute("SELECT name, applied_us FROM schema_migrations ORDER BY rowid"))


def schema(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return list(conn.execute("SELECT type, name FROM sqlite_master ORDER BY type, name"))


def build_old_database(conn: sqlite3.Connection) -> None:
    """A database from before 0002: executions only, holding one finished execution."""
    assert migrate(conn, MIGRATIONS[:1]) == NAMES[:1]
    conn.execute(
        "INSERT INTO executions (execution_id, span_id, trace_id, task_id, task_slug, task_name, trigger,"
        " attempt, status, started_us, ended_us, duration_ms, session_id, created_us, detail)"
        " VALUES ('task_exec_legacy_1', ?, ?, 'legacy', 'legacy', 'Legacy task', 'manual', 1, 'success',"
        " 1700000000000000, 1700000002000000, 2000, 'task:legacy:1', 1700000002000000, ?)",
        (OLD_SPAN, OLD_TRACE, json.dumps({"parents": [], "causes": []})),
    )


async def test_a_fresh_database_records_every_migration_in_order(
    db_path: Path, raw: sqlite3.Connection
) -> None:
    await (await Store.open(str(db_path))).close()
    recorded = ledger(raw)
    assert [name for name, _ in recorded] == NAMES
    assert [at for _, at in recorded] == sorted(at for _, at in recorded)


async def test_opening_a_database_twice_applies_nothing_new(db_path: Path, raw: sqlite3.Connection) -> None:
    await (await Store.open(str(db_path))).close()
    first, tables = ledger(raw), schema(raw)
    await (await Store.open(str(db_path))).close()
    assert (ledger(raw), schema(raw)) == (first, tables)
    assert migrate(raw) == []


async def test_an_old_database_is_upgraded_at_open_and_keeps_its_rows(
    db_path: Path, raw: sqlite3.Connection
) -> None:
    build_old_database(raw)
    async with await Store.open(str(db_path)) as store:
        page = await store.list_executions(ExecutionFilter(task_id="legacy"))
        trace = await store.trace(OLD_TRACE)
        retry = await store.start(StartRequest(task_id="legacy", retry_of=OLD_SPAN))
        await store.finish(FinishRequest(span_id=retry.execution.span_id, status="success"))
    assert [name for name, _ in ledger(raw)] == NAMES
    assert [(e.span_id, e.status, e.task_name) for e in page.executions] == [
        (OLD_SPAN, "success", "Legacy task")
    ]
    assert trace.found and (retry.execution.attempt, retry.execution.trace_id) == (2, OLD_TRACE)


@pytest.mark.parametrize("old", [True, False], ids=["old", "fresh"])
async def test_stores_opening_one_database_at_once_apply_each_migration_once(
    db_path: Path, raw: sqlite3.Connection, old: bool
) -> None:
    if old:
        build_old_database(raw)
    async with asyncio.timeout(20):
        stores = await asyncio.gather(*(Store.open(str(db_path)) for _ in range(3)))
        for store in stores:
            await store.close()
    assert [name for name, _ in ledger(raw)] == NAMES


BAD_STEP = Migration(
    "0099_half_done",
    (
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)",
        "ALTER TABLE executions ADD COLUMN note_id INTEGER",
        "CREATE INDEX ix_missing ON no_such_table (x)",
    ),
)


def test_a_migration_that_fails_midway_rolls_back_with_its_ledger_row(raw: sqlite3.Connection) -> None:
    migrate(raw, MIGRATIONS[:2])
    tables, columns = schema(raw), list(raw.execute("PRAGMA table_info(executions)"))
    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        migrate(raw, (*MIGRATIONS[:2], BAD_STEP, MIGRATIONS[2]))
    assert [name for name, _ in ledger(raw)] == NAMES[:2]
    assert (schema(raw), list(raw.execute("PRAGMA table_info(executions)"))) == (tables, columns)
    assert not raw.in_transaction


def test_after_a_failed_migration_is_fixed_the_next_run_applies_the_rest(raw: sqlite3.Connection) -> None:
    with pytest.raises(sqlite3.OperationalError):
        migrate(raw, (MIGRATIONS[0], BAD_STEP))
    fixed = Migration(BAD_STEP.name, BAD_STEP.statements[:2])
    assert migrate(raw, (MIGRATIONS[0], fixed, *MIGRATIONS[1:])) == [fixed.name, *NAMES[1:]]
    assert "note_id" in {row[1] for row in raw.execute("PRAGMA table_info(executions)")}
