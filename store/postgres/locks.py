"""The advisory locks that stand in for SQLite's file lock.

SQLite lets one writer in at a time (BEGIN IMMEDIATE); PostgreSQL lets every connection write
at once. The write jobs read a `tasks` row and write it back, and check for a row before
inserting one, so two processes running them side by side could lose an update. Every write
transaction therefore takes WRITE_LOCK first: writers in all processes then run one after
another, exactly as on SQLite. Each lock is keyed by the schema as well, so two histories in
one database (say, the test suite's schemas) do not wait for each other."""

from __future__ import annotations

WRITE_LOCK = 0x7448_5701
MIGRATE_LOCK = 0x7448_4D01


def lock_sql(key: int) -> str:
    """Take `key` for the rest of the current transaction (waits, up to lock_timeout)."""
    # Inlined rather than bound: a bound Python int may travel as int8, and the two-key
    # form of the function takes two int4s.
    return f"SELECT pg_advisory_xact_lock({int(key)}, hashtext(coalesce(current_schema(), '')))"
