"""`task-history migrate`, `task-history copy` and `auto_migrate` as real CLI processes, against real
SQLite files and the real PostgreSQL server: migrate applies every step once and then nothing; a
server that may not migrate refuses a database that lacks migrations and starts once it has them; a
history copied SQLite -> PostgreSQL -> SQLite comes back row for row."""

from __future__ import annotations

import sqlite3
import subprocess
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import cli_command, cli_env, free_port, serve_process
from mcp import Client
from tool_support import SEED_000_WALK, SEED_TASK, count_executions, ok

from store import Store
from store.admin import pending_migrations
from store.engines import engine_of
from store.models import (
    ErrorInput,
    EventRequest,
    FinishRequest,
    IOEffects,
    RecordRequest,
    StartRequest,
    Usage,
)
from store.sqlite.schema import MIGRATIONS

T0 = datetime(2025, 11, 4, 18, 29, 12, tzinfo=UTC)
MIGRATION_NAMES = [m.name for m in MIGRATIONS]
COLLECTOR = "http://collector.internal:4318/v1/traces"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_command(*args), env=cli_env(), capture_output=True, text=True, timeout=120)


# ---- migrate and auto_migrate ------------------------------------------------------------


async def test_migrate_applies_every_step_in_order_and_nothing_the_second_time(database_url: str) -> None:
    first = _cli("migrate", "--database-url", database_url)
    assert first.returncode == 0, first.stderr
    assert [line.removeprefix("applied ") for line in first.stdout.splitlines()[:-1]] == MIGRATION_NAMES
    assert f"applied {len(MIGRATIONS)} migration(s)" in first.stdout
    assert await pending_migrations(database_url) == []
    second = _cli("migrate", "--database-url", database_url)
    assert second.returncode == 0, second.stderr
    assert "applied" not in second.stdout and "nothing to apply" in second.stdout


def test_migrate_creates_a_new_sqlite_file_and_its_folder(tmp_path: Path) -> None:
    target = tmp_path / "new" / "folder" / "history.db"
    done = _cli("migrate", "--db", f"sqlite:///{target}")
    assert done.returncode == 0, done.stderr
    with closing(sqlite3.connect(target)) as conn:
        applied = [row[0] for row in conn.execute("SELECT name FROM schema_migrations ORDER BY name")]
    assert applied == MIGRATION_NAMES


async def test_serve_without_auto_migrate_refuses_an_unmigrated_database_naming_the_command(
    database_url: str,
) -> None:
    port = str(free_port())
    refused = _cli("serve", "--port", port, "--database-url", database_url, "--no-auto-migrate")
    assert refused.returncode == 1
    assert "task-history migrate" in refused.stderr and "auto_migrate is off" in refused.stderr
    assert MIGRATION_NAMES[0] in refused.stderr
    assert await pending_migrations(database_url) == MIGRATION_NAMES  # checking changed nothing
    if engine_of(database_url) == "sqlite":
        assert not Path(database_url).exists()


async def test_after_migrate_a_server_without_auto_migrate_starts_and_serves(
    database_url: str, tmp_path: Path
) -> None:
    assert _cli("migrate", "--database-url", database_url).returncode == 0
    with serve_process(database_url, tmp_path / "serve.log", "--no-auto-migrate") as server:
        async with Client(server.mcp_url) as client:
            await ok(
                client, "tasks_record", task_id="after-migrate", status="success", started_at=T0.isoformat()
            )
            assert await count_executions(client) == 1


def test_the_read_commands_also_refuse_an_unmigrated_database_when_auto_migrate_is_off(
    tmp_path: Path,
) -> None:
    db = tmp_path / "history.db"
    refused = _cli("list", "--db", str(db), "--no-auto-migrate")
    assert refused.returncode == 1 and "task-history migrate" in refused.stderr
    assert not db.exists()


async def test_migrate_and_serve_print_a_postgresql_url_without_its_password(
    postgres_url: str, tmp_path: Path
) -> None:
    url = f"{postgres_url}&password=hunter2"  # trust authentication ignores it; the output must too
    migrated = _cli("migrate", "--database-url", url)
    assert migrated.returncode == 0, migrated.stderr
    assert "password=***" in migrated.stdout and "hunter2" not in migrated.stdout + migrated.stderr
    with serve_process(url, tmp_path / "serve.log") as server:
        log = server.log()
    assert "serving http://127.0.0.1" in log and "password=***" in log and "hunter2" not in log


# ---- copy --------------------------------------------------------------------------------


async def _write_history(database_url: str) -> None:
    """Something of everything the store keeps: a lifecycle with a worker and a handoff (events,
    task state, notes), a failure retried to success with side effects and usage, an idempotent
    run left running, an out-of-order event, text beyond ASCII, and an OTLP delivery record."""
    async with await Store.open(database_url) as store:
        for n, (event_type, actor, data) in enumerate(SEED_000_WALK):
            ts = T0 + timedelta(seconds=n)
            await store.log_event(
                EventRequest(event_type=event_type, task_id=SEED_TASK, actor=actor, data=data, ts=ts)
            )
        await store.log_event(
            EventRequest(
                event_type="acme.note", task_id=SEED_TASK, ts=T0, data={"note": "late, out of order"}
            )
        )
        first = await store.start(StartRequest(task_id="nightly_ingest", actor="cron", started_at=T0))
        error = ErrorInput(
            type="TimeoutError", message="connexion réinitialisée", stack='File "job.py", line 3'
        )
        await store.finish(FinishRequest(span_id=first.execution.span_id, status="failed", error=error))
        retry = await store.start(StartRequest(task_id="nightly_ingest", retry_of=first.execution.span_id))
        await store.finish(
            FinishRequest(span_id=retry.execution.span_id, status="success", result="42 rows ✓")
        )
        recorded = await store.record(
            RecordRequest(
                task_id="report", started_at=T0, ended_at=T0 + timedelta(milliseconds=1500), status="partial",
                io=IOEffects(files_written=["reports/daily.md"], tool_calls=["grep", "sed"]),
                usage=Usage(input_tokens=1200, output_tokens=345, cost=0.0123456789),
                attributes={"nested": {"list": [1, 2.5, None, "ü"]}},
            )
        )  # fmt: skip
        await store.start(StartRequest(task_id="report", idempotency_key="report-2025-11-04"))
        await store.mark_exported(COLLECTOR, [recorded.execution.span_id, first.execution.span_id])


def _tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of the SQLite file but the migration ledger, without surrogate keys: rows in
    write order (seq) where the table has one, derived rows by their execution's span_id."""
    with closing(sqlite3.connect(path)) as conn:
        names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {
            name: conn.execute(_contents_query(conn, name)).fetchall()
            for name in sorted(names)
            if name not in ("schema_migrations", "sqlite_sequence")
        }


def _contents_query(conn: sqlite3.Connection, table: str) -> str:
    columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
    kept = [f"t.{c}" for c in columns if c not in ("seq", "exec_seq")]
    if "exec_seq" in columns:
        joined = f"{table} AS t JOIN executions AS e ON e.seq = t.exec_seq"
        return f"SELECT e.span_id, {', '.join(kept)} FROM {joined} ORDER BY 1, {', '.join(kept)}"
    order = "t.seq" if "seq" in columns else ", ".join(kept)
    return f"SELECT {', '.join(kept)} FROM {table} AS t ORDER BY {order}"


@pytest.mark.postgres
async def test_a_history_copied_sqlite_to_postgresql_and_back_is_unchanged_row_for_row(
    tmp_path: Path, postgres_url: str
) -> None:
    start, back = tmp_path / "start.db", tmp_path / "back.db"
    await _write_history(str(start))
    there = _cli("copy", "--from", str(start), "--to", postgres_url)
    assert there.returncode == 0, there.stderr
    assert "executions 6 copied" in there.stdout and "events 12 copied" in there.stdout
    home = _cli("copy", "--from", postgres_url, "--to", f"sqlite:///{back}")
    assert home.returncode == 0, home.stderr
    original, returned = _tables(start), _tables(back)
    assert set(returned) == set(original)
    for table, rows in original.items():
        assert rows, f"the test history left {table} empty, so it proves nothing about it"
        assert returned[table] == rows, table


@pytest.mark.postgres
async def test_copying_again_adds_nothing_and_says_every_row_was_already_there(
    tmp_path: Path, postgres_url: str
) -> None:
    start = tmp_path / "start.db"
    await _write_history(str(start))
    assert _cli("copy", "--from", str(start), "--to", postgres_url).returncode == 0
    again = _cli("copy", "--from", str(start), "--to", postgres_url)
    assert again.returncode == 0, again.stderr
    assert "executions 0 copied, 0 updated, 6 already there" in again.stdout
    async with await Store.open(postgres_url) as store:
        assert (await store.list_executions(limit=1)).total == 6


def test_copy_from_a_missing_file_is_refused_instead_of_copying_an_empty_new_database(tmp_path: Path) -> None:
    done = _cli("copy", "--from", str(tmp_path / "typo.db"), "--to", str(tmp_path / "target.db"))
    assert done.returncode == 2 and "no database file at" in done.stderr
    assert not (tmp_path / "typo.db").exists() and not (tmp_path / "target.db").exists()
