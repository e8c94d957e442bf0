"""The PostgreSQL writer: SQLite's group commit (store.sqlite.writer.GroupCommitWriter) on one
psycopg connection per process, on the writer thread.

A batch is one READ COMMITTED transaction that first takes the write advisory lock
(store.postgres.locks), so writers in different processes take turns just as SQLite's
BEGIN IMMEDIATE makes them; each job runs in a savepoint. READ COMMITTED matters here: every
statement after the lock sees everything the previous lock holder committed (a REPEATABLE
READ snapshot would be taken before the wait and miss it)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg

from store.errors import StoreError, StoreUnavailable
from store.postgres.locks import WRITE_LOCK, lock_sql
from store.postgres.tx import PgTx
from store.sqlite.jobs import RunningCache
from store.sqlite.writer import GroupCommitWriter

Connect = Callable[[], psycopg.Connection[Any]]


class PgWriter(GroupCommitWriter):
    def __init__(
        self, connect: Connect, conn: psycopg.Connection[Any], executor: ThreadPoolExecutor, batch_max: int
    ) -> None:
        self._connect = connect
        self._conn = conn
        # Other processes may finish these executions: the jobs' guarded update notices (see
        # store.sqlite.jobs.RunningCache), as PostgreSQL has no cheap "changed since" check.
        self.running = RunningCache()
        super().__init__(executor, batch_max)

    async def close(self) -> None:
        await super().close()
        await asyncio.get_running_loop().run_in_executor(self._executor, self._conn.close)

    def _commit(self, jobs: list[Callable[[Any], Any]], *, retry: bool = True) -> list[tuple[bool, Any]]:
        """Runs on the writer thread: lock, one savepoint per job, commit."""
        conn, running = None, False
        try:
            conn = self._connection()
            with conn.transaction():
                conn.execute(lock_sql(WRITE_LOCK))
                running, tx = True, WriterTx(conn, self.running)
                outcomes = [_run_job(conn, tx, job) for job in jobs]
        except psycopg.Error as exc:
            self.running.clear()  # what this transaction's jobs inserted is gone
            if retry and not running and conn is not None and conn.broken:
                # The connection died while idle (a server restart, a failover, an idle timeout)
                # and no job has run: nothing was written, so the batch can go again on a new one.
                return self._commit(jobs, retry=False)
            return [(False, _unavailable(exc))] * len(jobs)
        except BaseException:
            self.running.clear()  # the transaction was rolled back with what its jobs inserted
            raise
        return outcomes

    def _connection(self) -> psycopg.Connection[Any]:
        """The writer's connection, reopened when the server dropped it (a restart, a failover)."""
        if self._conn.broken or self._conn.closed:
            self._conn.close()
            self._conn = self._connect()
        return self._conn


class WriterTx(PgTx):
    """The writer's transaction, carrying the writer's RunningCache for the jobs."""

    def __init__(self, conn: psycopg.Connection[Any], running: RunningCache) -> None:
        super().__init__(conn)
        self.running = running


def _run_job(conn: psycopg.Connection[Any], tx: WriterTx, job: Callable[[Any], Any]) -> tuple[bool, Any]:
    try:
        with conn.transaction():  # a savepoint: a failed job leaves nothing behind
            value = job(tx)
    except Exception as exc:
        tx.running.job_failed()
        return False, exc
    tx.running.job_done()
    return True, value


def _unavailable(exc: psycopg.Error) -> StoreError:
    if isinstance(exc, psycopg.errors.LockNotAvailable):
        return StoreUnavailable(
            "another process held the write lock past the busy timeout; nothing was written",
            hint="Retry the call; if it persists, raise busy_timeout_ms or find the stuck writer (pg_locks).",
        )
    return StoreUnavailable(
        f"the database could not commit ({exc}); the write was not acknowledged",
        hint="Retry the call: writes with an idempotency_key or event_id are safe to repeat.",
    )
