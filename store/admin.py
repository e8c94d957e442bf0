"""Store administration, for the CLI (`task-history migrate`, `task-history copy`) and for
operators: apply the schema migrations explicitly, and copy a whole history between backends.

`migrate` lets a fleet be upgraded in order (one command, then the servers) instead of by
whichever server starts first. `copy_history` moves every execution, event and task-state row
from one database to another (SQLite to PostgreSQL when a team outgrows one host, or back),
in key order and in batches, without loss; running it again adds nothing, so an interrupted
or repeated copy is safe, and a copy of a live source catches up on a second run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass, field

from store.backend import Backend, BackendOptions
from store.engines import engine_of, open_backend
from store.errors import InvalidInput
from store.rules import Policy
from store.transfer import SPECS, TABLES, Table, TableReport

Progress = Callable[[Table, int], None]
"""Called after each batch with the table and how many of its rows were read so far."""

BATCH_MAX = 10_000


async def migrate(database_url: str) -> list[str]:
    """Apply the migrations the database lacks, each in its own transaction; returns their
    names (empty when it was up to date). Safe while other processes use or migrate it."""
    if engine_of(database_url) == "postgres":
        return await asyncio.to_thread(_migrate_postgres, database_url)
    return await asyncio.to_thread(_migrate_sqlite, database_url)


def _migrate_sqlite(database_url: str) -> list[str]:
    from store.sqlite.backend import connect_writer, sqlite_path
    from store.sqlite.schema import migrate as migrate_sqlite

    with closing(connect_writer(sqlite_path(database_url), BackendOptions())) as conn:
        return migrate_sqlite(conn)


def _migrate_postgres(database_url: str) -> list[str]:
    from store.postgres.backend import connect_writer
    from store.postgres.schema import migrate as migrate_postgres

    with connect_writer(database_url, BackendOptions()) as conn:
        return migrate_postgres(conn)


@dataclass
class CopyReport:
    """What a copy did, table by table. `conflicts` lists rows that collide with a different
    row already in the target (same idempotency key, say); they were not copied."""

    executions: TableReport = field(default_factory=TableReport)
    events: TableReport = field(default_factory=TableReport)
    tasks: TableReport = field(default_factory=TableReport)

    @property
    def copied(self) -> int:
        return self.executions.copied + self.events.copied + self.tasks.copied

    @property
    def conflicts(self) -> list[str]:
        return self.executions.conflicts + self.events.conflicts + self.tasks.conflicts


async def copy_history(
    from_url: str, to_url: str, *, batch: int = 1000, progress: Progress | None = None
) -> CopyReport:
    """Copy every execution, event and task state from `from_url` into `to_url` (created and
    migrated when new). Rows the target already has are skipped; an execution copied while it
    was running takes its outcome on the next copy; a task's state is replaced by a newer one."""
    if not 1 <= batch <= BATCH_MAX:
        raise InvalidInput("batch", f"is {batch}; it must be between 1 and {BATCH_MAX}")
    if from_url == to_url:
        raise InvalidInput("to_url", "is the database being copied", hint="Copy into a different database.")
    report = CopyReport()
    async with _opened(from_url) as source, _opened(to_url) as target:
        # Executions first, then events, then tasks: a task row then describes what was copied.
        for table in TABLES:
            getattr(report, table).merge(await _copy_table(source, target, table, batch, progress))
    return report


async def _copy_table(
    source: Backend, target: Backend, table: Table, batch: int, progress: Progress | None
) -> TableReport:
    """Walk `table` in key order: seq for executions and events (the order they were written,
    which ties in time are sorted by, so the copy keeps it), task_id for tasks."""
    report, after, read = TableReport(), SPECS[table].first_key, 0
    while rows := await source.scan_rows(table, after, batch):
        report.merge(await target.copy_rows(table, [row[1:] for row in rows]))
        after, read = rows[-1][0], read + len(rows)
        if progress is not None:
            progress(table, read)
    return report


@asynccontextmanager
async def _opened(database_url: str) -> AsyncIterator[Backend]:
    backend = await open_backend(database_url, Policy(), BackendOptions())
    try:
        yield backend
    finally:
        await backend.close()
