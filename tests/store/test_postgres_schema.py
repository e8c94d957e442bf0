"""The PostgreSQL schema and its migrations: the same named steps and ledger as SQLite, the same
tables, columns and (partial, unique) indexes; `store.admin.migrate` applies what is pending
and nothing the second time, also when several processes migrate at once; a failed step rolls
back with its ledger row. And the URL picks the engine."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest

from store import InvalidInput, Store, StoreUnavailable
from store.admin import migrate
from store.engines import engine_of
from store.models import FinishRequest, StartRequest
from store.postgres import schema as pg_schema
from store.postgres.locks import WRITE_LOCK, lock_sql
from store.sqlite.schema import MIGRATIONS, Migration

NAMES = [m.name for m in MIGRATIONS]


@pytest.fixture
def pg(postgres_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        yield conn


def pg_ledger(conn: psycopg.Connection[Any]) -> list[str]:
    return [name for (name,) in conn.execute("SELECT name FROM schema_migrations ORDER BY applied_us, name")]


async def test_migrate_applies_every_step_once_and_nothing_the_second_time(database_url: str) -> None:
    assert await migrate(database_url) == NAMES
    assert await migrate(database_url) == []
    async with await Store.open(database_url) as store:
        await store.start(StartRequest(task_id="after-migrate"))
    assert await migrate(database_url) == []


@pytest.mark.postgres
async def test_processes_migrating_one_postgres_schema_at_once_apply_each_step_once(
    postgres_url: str, pg: psycopg.Connection[Any]
) -> None:
    """Each migrate call runs on its own thread and connection, as separate processes would."""
    async with asyncio.timeout(30):
        applied = await asyncio.gather(*(migrate(postgres_url) for _ in range(4)))
    assert sorted(name for names in applied for name in names) == NAMES
    assert pg_ledger(pg) == NAMES


@pytest.mark.postgres
async def test_postgres_has_the_sqlite_tables_columns_and_indexes(
    postgres_url: str, pg: psycopg.Connection[Any], tmp_path: Path
) -> None:
    await migrate(postgres_url)
    await migrate(str(tmp_path / "h.db"))
    with closing(sqlite3.connect(tmp_path / "h.db")) as lite:
        lite_tables = {
            t: [row[1] for row in lite.execute(f"PRAGMA table_info({t})")]
            for (t,) in lite.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        lite_indexes = {
            n
            for (n,) in lite.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            )
        }
    pg_tables: dict[str, list[str]] = {}
    for table, column in pg.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
    ):
        pg_tables.setdefault(table, []).append(column)
    pg_indexes = {
        n for (n,) in pg.execute("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")
    }
    assert pg_tables == lite_tables
    # PostgreSQL also names the indexes behind PRIMARY KEY and UNIQUE columns (SQLite's are implicit).
    assert lite_indexes == {n for n in pg_indexes if not n.endswith(("_pkey", "_key"))}
    assert {n for n in pg_indexes if n.endswith("_key")} == {
        "executions_execution_id_key", "executions_span_id_key", "executions_idempotency_key_key",
        "events_event_id_key",
    }  # fmt: skip


BAD_STEP = Migration(
    "0099_half_done",
    (
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)",
        "ALTER TABLE executions ADD COLUMN note_id INTEGER",
        "CREATE INDEX ix_missing ON no_such_table (x)",
    ),
)


@pytest.mark.postgres
def test_a_postgres_migration_that_fails_midway_rolls_back_with_its_ledger_row(
    pg: psycopg.Connection[Any],
) -> None:
    pg_schema.migrate(pg, MIGRATIONS[:2])
    with pytest.raises(psycopg.errors.UndefinedTable, match="no_such_table"):
        pg_schema.migrate(pg, (*MIGRATIONS[:2], BAD_STEP, *MIGRATIONS[2:]))
    assert pg_ledger(pg) == NAMES[:2]
    assert pg.execute("SELECT to_regclass('notes')").fetchone() == (None,)
    fixed = Migration(BAD_STEP.name, BAD_STEP.statements[:2])
    assert pg_schema.migrate(pg, (*MIGRATIONS[:2], fixed, *MIGRATIONS[2:])) == [fixed.name, *NAMES[2:]]


@pytest.mark.postgres
def test_a_migration_waits_for_a_write_in_flight_so_its_backfill_misses_nothing(
    pg: psycopg.Connection[Any], postgres_url: str
) -> None:
    """A step that backfills a rollup, then makes the triggers that keep it, counted from a snapshot
    that missed a running process's uncommitted write; nothing corrected it afterwards. The step now
    waits for that write's transaction (the write lock) before it reads anything."""
    last = MIGRATIONS[-1]  # 0013_failure_groups: backfill, then triggers
    pg_schema.migrate(pg, MIGRATIONS[:-1])
    with psycopg.connect(postgres_url) as writer:  # another process, mid-transaction
        writer.execute(lock_sql(WRITE_LOCK))
        writer.execute(
            "INSERT INTO failures (exec_seq, fingerprint, error_type, message, task_id, actor, trace_id, "
            "started_us) VALUES (%s, 'f', 'E', 'm', 't', NULL, 'x', 1)",
            (_an_execution(writer),),
        )
        migrating = threading.Thread(target=lambda: _migrate_on_own_connection(postgres_url))
        migrating.start()
        _wait_for(lambda: _waits_on_an_advisory_lock(pg), "the migration to wait for the write lock")
        assert pg_ledger(pg) == NAMES[:-1]
        writer.commit()
    migrating.join(timeout=30)
    assert not migrating.is_alive() and pg_ledger(pg) == NAMES
    assert pg.execute("SELECT fingerprint, n FROM failure_groups").fetchall() == [("f", 1)], last.name


def _an_execution(conn: psycopg.Connection[Any]) -> int:
    span = str(uuid.uuid4())
    row = conn.execute(
        "INSERT INTO executions (execution_id, span_id, trace_id, task_id, task_slug, trigger, attempt, "
        "status, started_us, scrubbed, backfilled, session_id, created_us, detail) VALUES "
        "(%s, %s, %s, 't', 't', 'manual', 1, 'running', 1, 0, 0, 's', 1, '{}') RETURNING seq",
        (f"x-{span}", span, str(uuid.uuid4())),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _migrate_on_own_connection(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        pg_schema.migrate(conn)


def _waits_on_an_advisory_lock(conn: psycopg.Connection[Any]) -> bool:
    found = conn.execute(
        "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    ).fetchone()
    return bool(found and found[0])


def _wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)  # polling a condition, not waiting for time to pass


@pytest.mark.postgres
async def test_text_with_a_nul_character_is_refused_on_postgres_naming_it(postgres_url: str) -> None:
    """PostgreSQL cannot store NUL characters: a write or an import holding one is refused naming
    its field (as on SQLite, store.store.check_encodable), storing nothing. A row that reaches the
    engine anyway (a copy from an older SQLite file) is refused too: tests/store/test_postgres_copy.py."""
    async with await Store.open(postgres_url) as store:
        started = (await store.start(StartRequest(task_id="t"))).execution
        with pytest.raises(InvalidInput, match=r"^result: contains a NUL"):
            await store.finish(FinishRequest(span_id=started.span_id, status="success", result="a\x00b"))
        finished = (await store.finish(FinishRequest(span_id=started.span_id, status="success"))).execution
        twin = finished.model_copy(
            update={"span_id": str(uuid.uuid4()), "execution_id": "imported", "result": "a\x00b"}
        )
        with pytest.raises(InvalidInput, match=r"^result: contains a NUL"):
            await store.import_execution(twin)
        assert (await store.list_executions()).total == 1


@pytest.mark.parametrize(
    ("url", "engine"),
    [
        ("./data/task-history.db", "sqlite"),
        ("sqlite:///tmp/h.db", "sqlite"),
        ("postgresql://127.0.0.1:5432/test", "postgres"),
        ("postgres://user@db.internal/history", "postgres"),
    ],
)
def test_the_url_picks_the_engine(url: str, engine: str) -> None:
    assert engine_of(url) == engine


def test_an_unknown_scheme_is_refused_naming_database_url_without_echoing_the_url() -> None:
    with pytest.raises(InvalidInput) as caught:
        engine_of("mysql://root:hunter2@db/history")
    assert caught.value.field == "database_url" and "hunter2" not in str(caught.value)


async def test_an_unreachable_postgres_server_is_store_unavailable() -> None:
    with pytest.raises(StoreUnavailable):
        await Store.open("postgresql://127.0.0.1:1/test?connect_timeout=2")
