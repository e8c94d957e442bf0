"""Histories for the tests of what triggers keep (failure_stacks, run_tallies): every kind of
write the store makes, with real tracebacks, and raw statements run as another client would."""

from __future__ import annotations

import sqlite3
import traceback
import uuid
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from store import Store
from store.models import ErrorInput, EventRequest, FinishRequest, RecordRequest, StartRequest

T0 = datetime(2025, 11, 1, tzinfo=UTC)


def stack(kind: int, number: int) -> tuple[str, str]:
    """A real traceback: `kind` picks the call path (so the stack_hash), `number` the message."""

    def load(n: int) -> None:
        raise KeyError(f"user {n} missing")

    def parse(n: int) -> None:
        raise ValueError(f"bad row {n}")

    try:
        (load, parse)[kind](number)
    except (KeyError, ValueError):
        return traceback.format_exc(), f"failure {number}"
    raise AssertionError("unreachable")


def error(kind: int, number: int) -> ErrorInput:
    text, message = stack(kind, number)
    return ErrorInput(type=("KeyError", "ValueError")[kind], message=message, stack=text)


def raw(database_url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on the database itself (committed), as another client would."""
    if database_url.startswith("postgresql"):
        with psycopg.connect(database_url) as conn:
            cursor = conn.execute(sql.replace("?", "%s"), params)
            return [tuple(r) for r in cursor.fetchall()] if cursor.description else []
    with closing(sqlite3.connect(database_url, isolation_level=None)) as conn:
        conn.execute("PRAGMA foreign_keys = ON")  # as the store's writer connection has it
        return conn.execute(sql, params).fetchall()


async def record_failure(store: Store, task_id: str, minute: int, kind: int) -> str:
    req = RecordRequest(
        task_id=task_id, status="failed", started_at=T0 + timedelta(minutes=minute),
        ended_at=T0 + timedelta(minutes=minute, seconds=5), error=error(kind, minute),
    )  # fmt: skip
    return (await store.record(req)).execution.span_id


async def write_every_kind(store: Store, check: Callable[[], None]) -> None:
    for minute in range(8):
        await record_failure(store, f"job-{minute % 3}", minute, minute % 2)
        await store.record(
            RecordRequest(
                task_id="job-0", status="success", started_at=T0 + timedelta(minutes=minute, seconds=1)
            )
        )
    check()
    first = (await store.start(StartRequest(task_id="retried"))).execution
    await store.finish(FinishRequest(span_id=first.span_id, status="failed", error=error(0, 100)))
    second = (await store.start(StartRequest(task_id="retried", retry_of=first.span_id))).execution
    check()
    await store.finish(FinishRequest(span_id=second.span_id, status="failed", error=error(1, 101)))
    third = (await store.start(StartRequest(task_id="retried", retry_of=second.span_id))).execution
    await store.finish(FinishRequest(span_id=third.span_id, status="success"))
    check()
    for minute, event_type in ((20, "task_started"), (21, "task_failed")):
        data = {"error": {"type": "OSError", "message": "disk full"}} if event_type == "task_failed" else {}
        await store.log_event(
            EventRequest(
                event_type=event_type, task_id="evented", ts=T0 + timedelta(minutes=minute), data=data
            )
        )
    check()
    original = (await store.get(await record_failure(store, "job-1", 30, 0))).execution
    ids = {"span_id": str(uuid.uuid4()), "trace_id": str(uuid.uuid4()), "execution_id": f"x-{uuid.uuid4()}"}
    imported = original.model_copy(
        update={**ids, "idempotency_key": None, "task_id": "imported", "started_at": T0 - timedelta(days=1)}
    )
    assert not (await store.import_execution(imported)).duplicate
    assert (await store.import_execution(imported)).duplicate
    check()


def unmigrate(conn: sqlite3.Connection, rollup: str, migration: str) -> None:
    """Take a rollup table and its three triggers out of a SQLite file, with the ledger row of the
    migration that made them, as a database from before that migration would be."""
    triggers = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE ?", (f"tr_{rollup}%",)
    ).fetchall()
    assert len(triggers) == 3
    for (name,) in triggers:
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute(f"DROP TABLE {rollup}")
    conn.execute("DELETE FROM schema_migrations WHERE name = ?", (migration,))


def assert_remigrated(db_path: Path, rollup: str, migration: str, rows_sql: str) -> None:
    """The migration rebuilds the rollup of an old database as triggers had kept it, and so does
    store.sqlite.derived.rebuild (the bulk loaders')."""
    from store.sqlite import derived
    from store.sqlite.schema import migrate

    with closing(sqlite3.connect(db_path, isolation_level=None)) as conn:
        before = set(conn.execute(rows_sql))
        unmigrate(conn, rollup, migration)
        assert migrate(conn) == [migration]
        assert set(conn.execute(rows_sql)) == before
        derived.rebuild(conn)
        assert set(conn.execute(rows_sql)) == before
