"""Readers: an async connection pool (psycopg_pool), so reads never queue behind the writer.
Each snapshot is one REPEATABLE READ, READ ONLY transaction: a multi-statement read (a page
and its count, a trace and its events) sees one committed state, as on SQLite."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from store.dbapi import ReadPlan, run_plan_async
from store.errors import StoreUnavailable
from store.postgres.conninfo import connection_kwargs
from store.postgres.tx import nul_refused, pg_sql

_BEGIN = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
T = TypeVar("T")


class PgReaderPool:
    def __init__(self, pool: AsyncConnectionPool[Any], size: int) -> None:
        self._pool = pool
        self._size = size

    @classmethod
    async def open(cls, url: str, size: int) -> PgReaderPool:
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            url, min_size=size, max_size=size, open=False, name="task-history-readers",
            kwargs=connection_kwargs(url, "task-history-reader"),
        )  # fmt: skip
        await pool.open(wait=True)
        return cls(pool, size)

    async def close(self) -> None:
        await self._pool.close()

    async def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """The rows of one statement. On an autocommit connection a statement is a snapshot of its
        own, so it needs no BEGIN and COMMIT: one round trip to the server instead of three, as on
        SQLite. A connection the server dropped while it sat in the pool is replaced and the
        statement run again (a read changes nothing), as `snapshot` does at BEGIN."""
        try:
            for _ in range(self._size + 1):  # every pooled connection may be dead, then a new one
                found = await self._fetch(sql, params)
                if found is not None:
                    return found
        except (PoolTimeout, psycopg.OperationalError) as exc:
            raise StoreUnavailable(f"the database could not be read ({exc})", hint="Retry the call.") from exc
        raise StoreUnavailable("the database dropped every connection it was read on", hint="Retry the call.")

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[Any] | None:
        """The statement's rows, or None when the pooled connection turned out to be dead."""
        conn = await self._pool.getconn()
        try:
            with nul_refused():
                cursor = await conn.execute(pg_sql(sql), params)
            return await cursor.fetchall()
        except psycopg.OperationalError:
            if conn.broken:
                return None
            raise
        finally:
            await self._pool.putconn(conn)  # a broken connection is closed and replaced

    async def read(self, plan: ReadPlan[T]) -> T:
        """Run `plan` in one snapshot, statement by statement (psycopg's are awaited on the loop)."""
        async with self.snapshot() as snap:
            return await run_plan_async(plan, snap.all)

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[PgSnapshot]:
        """A pooled connection inside one read transaction, returned to the pool afterwards."""
        try:
            conn = await self._begin()
            try:
                yield PgSnapshot(conn)
            finally:
                await self._end(conn)
        except (PoolTimeout, psycopg.OperationalError) as exc:
            raise StoreUnavailable(f"the database could not be read ({exc})", hint="Retry the call.") from exc

    async def _begin(self) -> psycopg.AsyncConnection[Any]:
        """A connection with its read transaction begun. One the server dropped while it sat in
        the pool (a restart, a failover) fails at BEGIN, before the caller's reads: it is
        discarded and the next one tried, so the caller never sees it."""
        for _ in range(self._size):
            conn = await self._pool.getconn()
            try:
                await conn.execute(_BEGIN)
                return conn
            except psycopg.OperationalError:
                await self._pool.putconn(conn)  # a broken connection is closed and replaced
                if not conn.broken:
                    raise
        conn = await self._pool.getconn()  # every pooled one was dead: this one is new
        await conn.execute(_BEGIN)
        return conn

    async def _end(self, conn: psycopg.AsyncConnection[Any]) -> None:
        # Read-only, so COMMIT and ROLLBACK are the same. A connection that died or was
        # interrupted mid-read needs neither: the pool resets or replaces what it gets back.
        try:
            with contextlib.suppress(psycopg.Error):
                await conn.execute("COMMIT")
        finally:
            await self._pool.putconn(conn)


class PgSnapshot:
    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with nul_refused():
            cursor = await self._conn.execute(pg_sql(sql), params)
        return await cursor.fetchall()

    async def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = await self.all(sql, params)
        return rows[0] if rows else None
