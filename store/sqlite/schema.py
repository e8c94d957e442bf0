"""The schema as an append-only, named, ordered list of migrations. Each is applied in
one transaction together with the row that records it; a schema change is a new step,
never an edit of an old one."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from store.timeutil import now_utc, to_us


@dataclass(frozen=True)
class Migration:
    name: str
    statements: tuple[str, ...]


_EXECUTIONS = """
CREATE TABLE executions (
    seq             INTEGER PRIMARY KEY,
    execution_id    TEXT NOT NULL UNIQUE,
    span_id         TEXT NOT NULL UNIQUE,
    trace_id        TEXT NOT NULL,
    parent_span_id  TEXT,
    task_id         TEXT NOT NULL,
    task_slug       TEXT NOT NULL,
    task_name       TEXT,
    task_type       TEXT,
    trigger         TEXT NOT NULL CHECK (trigger IN ('scheduled', 'manual')),
    actor           TEXT,
    worker_id       TEXT,
    attempt         INTEGER NOT NULL CHECK (attempt >= 1),
    retry_of        TEXT,
    idempotency_key TEXT UNIQUE,
    status          TEXT NOT NULL CHECK (status IN ('running', 'success', 'failed', 'partial', 'cancelled')),
    started_us      INTEGER NOT NULL,
    ended_us        INTEGER,
    duration_ms     INTEGER CHECK (duration_ms >= 0),
    scheduled_us    INTEGER,
    error_type      TEXT,
    error_message   TEXT,
    error_stack     TEXT,
    stack_hash      TEXT,
    result          TEXT,
    input_tokens    INTEGER,
    output_tokens   INTEGER,
    cost            REAL,
    backfilled      INTEGER NOT NULL DEFAULT 0,
    scrubbed        INTEGER NOT NULL DEFAULT 0,
    session_id      TEXT NOT NULL,
    created_us      INTEGER NOT NULL,
    detail          TEXT NOT NULL,
    CHECK (status <> 'failed' OR (error_type IS NOT NULL AND error_message IS NOT NULL)),
    CHECK (ended_us IS NULL OR ended_us >= started_us),
    CHECK ((attempt = 1) = (retry_of IS NULL))
)"""

_EVENTS = """
CREATE TABLE events (
    seq          INTEGER PRIMARY KEY,
    event_id     TEXT NOT NULL UNIQUE,
    event_type   TEXT NOT NULL,
    task_id      TEXT NOT NULL,
    trace_id     TEXT,
    span_id      TEXT,
    actor        TEXT,
    ts_us        INTEGER NOT NULL,
    data         TEXT NOT NULL,
    anomaly      TEXT,
    recorded_us  INTEGER NOT NULL
)"""

_TASKS = """
CREATE TABLE tasks (
    task_id           TEXT PRIMARY KEY,
    state             TEXT NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    assigned_to       TEXT,
    current_trace_id  TEXT,
    current_span_id   TEXT,
    started_us        INTEGER,
    completed_us      INTEGER,
    result            TEXT,
    last_event_us     INTEGER,
    terminal_event_id TEXT,
    notes             TEXT NOT NULL DEFAULT '[]',
    updated_us        INTEGER NOT NULL
)"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration("0001_executions", (
        _EXECUTIONS,
        "CREATE INDEX ix_exec_started ON executions (started_us DESC, seq DESC)",
        "CREATE INDEX ix_exec_task ON executions (task_id, started_us DESC, seq DESC)",
        "CREATE INDEX ix_exec_status ON executions (status, started_us DESC, seq DESC)",
        "CREATE INDEX ix_exec_trace ON executions (trace_id, attempt, started_us)",
    )),
    Migration("0002_events_and_tasks", (
        _EVENTS,
        "CREATE INDEX ix_events_task ON events (task_id, ts_us, seq)",
        "CREATE INDEX ix_events_trace ON events (trace_id, ts_us, seq) WHERE trace_id IS NOT NULL",
        "CREATE INDEX ix_events_span ON events (span_id, ts_us, seq) WHERE span_id IS NOT NULL",
        _TASKS,
    )),
    Migration("0003_query_indexes", (
        "CREATE INDEX ix_exec_task_status ON executions (task_id, status, started_us DESC, seq DESC)",
        "CREATE INDEX ix_exec_type ON executions (task_type, started_us DESC, seq DESC)",
        "CREATE INDEX ix_exec_actor ON executions (actor, started_us DESC, seq DESC)",
        "CREATE INDEX ix_exec_backfilled ON executions (backfilled, started_us DESC, seq DESC)",
        "CREATE INDEX ix_exec_retrying ON executions (started_us DESC, seq DESC)"
        " WHERE status = 'running' AND attempt > 1",
        "CREATE INDEX ix_exec_parent ON executions (parent_span_id) WHERE parent_span_id IS NOT NULL",
        "CREATE INDEX ix_exec_worker ON executions (task_id, worker_id, status) WHERE worker_id IS NOT NULL",
        "CREATE UNIQUE INDEX ux_exec_retry_of ON executions (retry_of) WHERE retry_of IS NOT NULL",
    )),
    # retrying=false (NOT running-retry) had no index to count from.
    Migration("0004_status_attempt_index", (
        "CREATE INDEX ix_exec_status_attempt ON executions (status, attempt)",
    )),
)  # fmt: skip

_LEDGER = "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_us INTEGER NOT NULL)"


def applied_migrations(conn: sqlite3.Connection) -> list[str]:
    conn.execute(_LEDGER)
    return [row[0] for row in conn.execute("SELECT name FROM schema_migrations ORDER BY name")]


def migrate(conn: sqlite3.Connection, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[str]:
    """Apply every migration not yet recorded, each in its own transaction; returns their names."""
    done = set(applied_migrations(conn))
    applied: list[str] = []
    for migration in migrations:
        if migration.name in done:
            continue
        _apply(conn, migration)
        applied.append(migration.name)
    return applied


def _apply(conn: sqlite3.Connection, migration: Migration) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Another process may have applied it while we waited for the lock.
        if conn.execute("SELECT 1 FROM schema_migrations WHERE name = ?", (migration.name,)).fetchone():
            conn.execute("COMMIT")
            return
        for statement in migration.statements:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO schema_migrations (name, applied_us) VALUES (?, ?)", (migration.name, to_us(now_utc()))
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
