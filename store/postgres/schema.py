"""Applies store.sqlite.schema.MIGRATIONS (the one list for both engines) to PostgreSQL, in each
step's PostgreSQL spelling, with the same `schema_migrations` ledger.

Each step runs in its own transaction together with its ledger row, under the migration
advisory lock (when several processes start at once, one applies a step while the others
wait, then find its row and skip it) and the write lock (no write of a running process falls
between a backfill and the triggers that take over from it). (PostgreSQL DDL is transactional,
so a failed step leaves neither its tables nor its row behind.)"""

from __future__ import annotations

from typing import Any

import psycopg

from store.postgres.locks import MIGRATE_LOCK, WRITE_LOCK, lock_sql
from store.sqlite.schema import MIGRATIONS, Migration
from store.timeutil import now_utc, to_us

_LEDGER = "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_us BIGINT NOT NULL)"


def applied_migrations(conn: psycopg.Connection[Any]) -> list[str]:
    with conn.transaction():
        # Under the lock: two concurrent CREATE TABLE IF NOT EXISTS can still collide.
        conn.execute(lock_sql(MIGRATE_LOCK))
        conn.execute(_LEDGER)
        return [row[0] for row in conn.execute("SELECT name FROM schema_migrations ORDER BY name")]


def migrate(conn: psycopg.Connection[Any], migrations: tuple[Migration, ...] = MIGRATIONS) -> list[str]:
    """Apply every migration not yet recorded, each in its own transaction; returns their names.
    `conn` must be in autocommit mode (each step opens its own transaction)."""
    done = set(applied_migrations(conn))
    return [m.name for m in migrations if m.name not in done and _apply(conn, m)]


def _apply(conn: psycopg.Connection[Any], migration: Migration) -> bool:
    with conn.transaction():
        conn.execute(lock_sql(MIGRATE_LOCK))
        # Another process may have applied it while we waited for the lock.
        if conn.execute("SELECT 1 FROM schema_migrations WHERE name = %s", (migration.name,)).fetchone():
            return False
        # And the write lock, as every write transaction takes it: a step that backfills a table
        # before making the triggers that keep it (failure_stacks, run_tallies, failure_groups) would
        # otherwise count from a snapshot that misses another process's write still in flight, which
        # no trigger then sees. (Writers never take the migration lock, so the order cannot deadlock.)
        conn.execute(lock_sql(WRITE_LOCK))
        for statement in migration.statements_for("postgres"):
            conn.execute(statement)
        conn.execute(
            "INSERT INTO schema_migrations (name, applied_us) VALUES (%s, %s)",
            (migration.name, to_us(now_utc())),
        )
    return True
