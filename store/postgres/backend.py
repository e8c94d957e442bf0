"""PostgresBackend: the store on a PostgreSQL database. Writes go to this process's one
PgWriter (group commit, serialized with other processes by an advisory lock), reads to a pool
of REPEATABLE READ snapshots.

Everything between opening and closing is SqliteBackend's code, unchanged: its methods only
submit the engine-neutral jobs (store.sqlite.jobs, store.sqlite.events) to a writer and run
the `?` query builders (store.sqlite.queries) in a snapshot, and PgWriter and PgReaderPool
offer the same two calls. One implementation of the rules, so both engines answer alike."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import psycopg

from store.backend import BackendOptions
from store.errors import StoreUnavailable
from store.postgres.conninfo import connection_kwargs
from store.postgres.reader import PgReaderPool
from store.postgres.schema import migrate
from store.postgres.writer import Connect, PgWriter
from store.rules import Policy
from store.sqlite.backend import SqliteBackend


def connect_writer(url: str, options: BackendOptions) -> psycopg.Connection[Any]:
    conn = psycopg.connect(url, **connection_kwargs(url, "task-history-writer"))
    # Waiting for another process's write lock is bounded like SQLite's busy_timeout.
    conn.execute(f"SET lock_timeout = {int(options.busy_timeout_ms)}")
    return conn


class PostgresBackend(SqliteBackend):
    @classmethod
    async def open(cls, url: str, policy: Policy, options: BackendOptions) -> PostgresBackend:  # type: ignore[override]
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="task-history-writer")
        connect = partial(connect_writer, url, options)
        try:
            conn, readers = await _connect(executor, connect, url, options)
        except psycopg.OperationalError as exc:
            executor.shutdown(wait=False)
            raise StoreUnavailable(f"could not open the PostgreSQL database ({exc})") from exc
        except BaseException:
            executor.shutdown(wait=False)
            raise
        writer = PgWriter(connect, conn, executor, options.write_batch_max)
        return cls(writer, readers, executor, policy)  # type: ignore[arg-type]


async def _connect(
    executor: ThreadPoolExecutor, connect: Connect, url: str, options: BackendOptions
) -> tuple[psycopg.Connection[Any], PgReaderPool]:
    """The writer's connection (with the schema migrated) and the reader pool."""
    loop = asyncio.get_running_loop()
    conn = await loop.run_in_executor(executor, connect)
    try:
        await loop.run_in_executor(executor, migrate, conn)
        return conn, await PgReaderPool.open(url, options.readers)
    except BaseException:
        conn.close()
        raise
