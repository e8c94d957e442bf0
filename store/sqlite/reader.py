"""Readers: a small pool of aiosqlite connections, so reads never queue behind writes
(WAL lets them read the last committed state while the writer works). A multi-statement
read runs in one read transaction, so its statements see the same snapshot: a read plan
(`read`, store.dbapi.ReadPlan) on the connection's thread in one hand-off, or `snapshot`
statement by statement."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import aiosqlite

from store.dbapi import ReadPlan, run_plan

T = TypeVar("T")


class ReaderPool:
    def __init__(self, connections: list[aiosqlite.Connection]) -> None:
        self._all = connections
        # Last in, first out: the connection used last has the hottest page cache (each keeps its
        # own), so a quiet server reads on one warm connection instead of rotating through cold ones.
        self._idle: asyncio.Queue[aiosqlite.Connection] = asyncio.LifoQueue()
        for conn in connections:
            self._idle.put_nowait(conn)

    @classmethod
    async def open(cls, path: str, size: int, busy_timeout_ms: int) -> ReaderPool:
        connections = []
        for _ in range(size):
            conn = await aiosqlite.connect(path, isolation_level=None)
            await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            await conn.execute("PRAGMA query_only = ON")
            connections.append(conn)
        return cls(connections)

    async def close(self) -> None:
        for conn in self._all:
            await conn.close()

    async def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """The rows of one statement. A single statement is its own read transaction, so it needs
        no BEGIN and COMMIT: each of those is a round trip to the connection's thread (about
        0.1 ms here), as much as an indexed query itself."""
        conn = await self._idle.get()
        try:
            return list(await conn.execute_fetchall(sql, params))
        finally:
            self._idle.put_nowait(conn)

    async def read(self, plan: ReadPlan[T]) -> T:
        """Run `plan` in one read transaction, all of it on the connection's thread: one hand-off
        to that thread in all, where `snapshot` takes one per statement, BEGIN and COMMIT."""
        conn = await self._idle.get()
        try:
            # aiosqlite offers no public call to run a function on its thread; `_execute` is how
            # each of its own methods gets there (unchanged through 0.22, which is pinned).
            return await conn._execute(_run_in_transaction, conn, plan)
        finally:
            self._idle.put_nowait(conn)

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Snapshot]:
        """A connection inside one read transaction, returned to the pool afterwards."""
        conn = await self._idle.get()
        try:
            await conn.execute("BEGIN")
            try:
                yield Snapshot(conn)
            finally:
                await conn.execute("COMMIT")
        finally:
            self._idle.put_nowait(conn)


class Snapshot:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(await self._conn.execute_fetchall(sql, params))

    async def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = await self.all(sql, params)
        return rows[0] if rows else None


def _run_in_transaction(conn: aiosqlite.Connection, plan: ReadPlan[T]) -> T:
    """On the connection's thread: BEGIN, the plan's statements, COMMIT (a read-only transaction
    ends the same way whether or not the plan raised)."""
    db: sqlite3.Connection = conn._conn  # the sqlite3 connection aiosqlite wraps
    db.execute("BEGIN")
    try:
        return run_plan(plan, lambda sql, params: db.execute(sql, params).fetchall())
    finally:
        with contextlib.suppress(sqlite3.Error):
            db.execute("COMMIT")
