"""Store administration, for the CLI (`task-history migrate`, `task-history copy`) and for
operators: apply the schema migrations explicitly, and copy a whole history between backends.

`migrate` lets a fleet be upgraded in order (one command, then the servers) instead of by
whichever server starts first; `pending_migrations` is what a server that may not migrate
checks. `copy_history` moves every execution, event and task-state row (and the record of
which spans were exported where) from one database to another (SQLite to PostgreSQL when a
team outgrows one host, or back), in key order and in batches, without loss; running it again
adds nothing, so an interrupted or repeated copy is safe, and a copy of a live source catches
up on a second run."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from store.backend import Backend, BackendOptions
from store.engines import engine_of, open_backend
from store.errors import InvalidInput, StoreError, StoreUnavailable
from store.rules import Policy
from store.sqlite.schema import MIGRATIONS
from store.transfer import LEDGERS, SPECS, TABLES, Table, TableReport

Progress = Callable[[Table, int], None]
"""Called after each batch with the table and how many of its rows were read so far."""

BATCH_MAX = 10_000


async def migrate(database_url: str) -> list[str]:
    """Apply the migrations the database lacks, each in its own transaction; returns their
    names (empty when it was up to date). Safe while other processes use or migrate it."""
    with _reaching(database_url):
        if engine_of(database_url) == "postgres":
            return await asyncio.to_thread(_migrate_postgres, database_url)
        return await asyncio.to_thread(_migrate_sqlite, database_url)


async def pending_migrations(database_url: str) -> list[str]:
    """The migrations the database lacks, in the order they would be applied, found without
    applying or creating anything (a missing SQLite file, or a schema without the ledger,
    lacks them all): what a server that may not migrate checks before it starts."""
    with _reaching(database_url):
        if engine_of(database_url) == "postgres":
            applied = await asyncio.to_thread(_applied_postgres, database_url)
        else:
            applied = await asyncio.to_thread(_applied_sqlite, database_url)
    return [m.name for m in MIGRATIONS if m.name not in applied]


@contextmanager
def _reaching(database_url: str) -> Iterator[None]:
    """A driver's or the file system's failure as StoreUnavailable, like Store.open's."""
    try:
        yield
    except StoreError:
        raise
    except Exception as exc:  # sqlite3.Error, psycopg.Error, OSError
        engine = "PostgreSQL" if engine_of(database_url) == "postgres" else "SQLite"
        raise StoreUnavailable(f"could not reach the {engine} database ({exc})") from exc


def _applied_sqlite(database_url: str) -> set[str]:
    from store.sqlite.backend import sqlite_path

    path = sqlite_path(database_url)
    if path == ":memory:" or not Path(path).exists():
        return set()
    # Read-only, so checking never creates or changes the file.
    with closing(sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)) as conn:
        ledger = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        if conn.execute(ledger).fetchone() is None:
            return set()
        return {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}


def _applied_postgres(database_url: str) -> set[str]:
    import psycopg

    from store.postgres.conninfo import connection_kwargs

    with psycopg.connect(database_url, **connection_kwargs(database_url, "task-history-admin")) as conn:
        ledger = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()
        if ledger is None or ledger[0] is None:
            return set()
        return {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}


def _migrate_sqlite(database_url: str) -> list[str]:
    from store.sqlite.backend import connect_writer, sqlite_path
    from store.sqlite.schema import migrate as migrate_sqlite

    path = sqlite_path(database_url)
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)  # a new database, as SqliteBackend.open makes
    with closing(connect_writer(path, BackendOptions())) as conn:
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
    span_exports: TableReport = field(default_factory=TableReport)

    def _tables(self) -> list[TableReport]:
        return [self.executions, self.events, self.tasks, self.span_exports]

    @property
    def copied(self) -> int:
        return sum(table.copied for table in self._tables())

    @property
    def conflicts(self) -> list[str]:
        return [conflict for table in self._tables() for conflict in table.conflicts]


async def copy_history(
    from_url: str, to_url: str, *, batch: int = 1000, progress: Progress | None = None
) -> CopyReport:
    """Copy every execution, event, task state and span-export record from `from_url` into
    `to_url` (created and migrated when new). Rows the target already has are skipped; an
    execution copied while it was running takes its outcome on the next copy; a task's state is
    replaced by a newer one."""
    if not 1 <= batch <= BATCH_MAX:
        raise InvalidInput("batch", f"is {batch}; it must be between 1 and {BATCH_MAX}")
    if from_url == to_url:
        raise InvalidInput("to_url", "is the database being copied", hint="Copy into a different database.")
    report = CopyReport()
    async with _opened(from_url) as source, _opened(to_url) as target:
        # Executions first, then events, then tasks: a task row then describes what was copied;
        # then which of those spans were already exported where.
        for table in (*TABLES, *LEDGERS):
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
    with _reaching(database_url):
        backend = await open_backend(database_url, Policy(), BackendOptions())
    try:
        yield backend
    finally:
        await backend.close()
