"""Read plans (store.dbapi.ReadPlan) on both engines' reader pools: a plan's statements all see one
committed state, even when another connection commits between two of them; a plan that raises
ends its transaction and leaves the connection to the next read; and on SQLite the whole plan
runs on the reader's thread, not statement by statement from the event loop."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psycopg
import pytest

from store import Store
from store.dbapi import ReadPlan
from store.errors import NotFound
from store.postgres.reader import PgReaderPool
from store.sqlite.reader import ReaderPool

COUNT = ("SELECT COUNT(*) FROM probe", ())
Pool = ReaderPool | PgReaderPool


@pytest.fixture
async def pool_and_writer(database_url: str) -> AsyncIterator[tuple[Pool, Callable[[], None]]]:
    """A reader pool on the test's database, with a `probe` table, and a function that commits one
    more probe row through a connection of its own."""
    await (await Store.open(database_url)).close()  # the schema, as a server would leave it
    if database_url.startswith("postgresql"):
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE probe (n INTEGER)")

        def commit_a_row() -> None:
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute("INSERT INTO probe VALUES (1)")

        pool: Pool = await PgReaderPool.open(database_url, 2)
    else:
        path = Path(database_url)
        with sqlite3.connect(path, isolation_level=None) as conn:
            conn.execute("CREATE TABLE probe (n INTEGER)")

        def commit_a_row() -> None:
            conn = sqlite3.connect(path, isolation_level=None)
            try:
                conn.execute("INSERT INTO probe VALUES (1)")
            finally:
                conn.close()

        pool = await ReaderPool.open(str(path), 2, 5000)
    try:
        yield pool, commit_a_row
    finally:
        await pool.close()


def count_twice(between: Callable[[], None]) -> ReadPlan[tuple[int, int]]:
    [(before,)] = yield COUNT
    between()
    [(after,)] = yield COUNT
    return int(before), int(after)


async def test_a_plan_sees_one_committed_state_while_another_connection_commits(
    pool_and_writer: tuple[Pool, Callable[[], None]],
) -> None:
    pool, commit_a_row = pool_and_writer
    assert await pool.read(count_twice(commit_a_row)) == (0, 0)
    # The row was committed: the next read sees it.
    assert await pool.read(count_twice(lambda: None)) == (1, 1)


def failing_after_one_statement() -> ReadPlan[None]:
    yield COUNT
    raise NotFound("execution", "span_id nope", hint="none")


async def test_a_plan_that_raises_ends_its_transaction_and_the_pool_reads_on(
    pool_and_writer: tuple[Pool, Callable[[], None]],
) -> None:
    pool, commit_a_row = pool_and_writer
    for _ in range(3):  # more reads than the pool has connections: each came back usable
        with pytest.raises(NotFound, match="span_id nope"):
            await pool.read(failing_after_one_statement())
    commit_a_row()
    # A transaction left open by the failed plans would still see the table empty.
    for _ in range(2):
        assert await pool.read(count_twice(lambda: None)) == (1, 1)


def where_it_runs(threads: list[int]) -> ReadPlan[None]:
    for _ in range(3):
        threads.append(threading.get_ident())
        yield COUNT
    threads.append(threading.get_ident())


async def test_on_sqlite_a_whole_plan_runs_on_the_readers_thread(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    await (await Store.open(str(path))).close()
    with sqlite3.connect(path, isolation_level=None) as conn:
        conn.execute("CREATE TABLE probe (n INTEGER)")
    pool = await ReaderPool.open(str(path), 1, 5000)
    try:
        threads: list[int] = []
        await pool.read(where_it_runs(threads))
    finally:
        await pool.close()
    assert len(threads) == 4 and len(set(threads)) == 1
    assert threads[0] != threading.get_ident()  # not the event loop's
