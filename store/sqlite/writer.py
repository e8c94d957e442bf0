"""The single writer: every write goes through one connection on one thread. Jobs queue
up while a transaction commits, and the next transaction takes all of them (group commit),
so one fsync covers many writes. Each job runs in its own savepoint: a job that fails
leaves nothing behind and does not disturb the others. A job's caller is answered only
after COMMIT has returned, so an acknowledged write is durable.

`GroupCommitWriter` is the engine-neutral half (the queue, the batching, answering callers);
`Writer` runs a batch on sqlite3. The PostgreSQL engine subclasses the same base
(store.postgres.writer), so both engines commit writes the same way."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from store.errors import StoreError, StoreUnavailable
from store.sqlite.jobs import RunningCache
from store.sqlite.tx import SqliteTx

T = TypeVar("T")


@dataclass
class _Pending:
    job: Callable[[Any], Any]
    future: asyncio.Future[Any]


class GroupCommitWriter:
    """Queues jobs and hands each batch to `_commit` on the executor's single thread."""

    def __init__(self, executor: ThreadPoolExecutor, batch_max: int) -> None:
        self._executor = executor
        self._batch_max = batch_max
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="task-history-writer")

    async def submit(self, job: Callable[[Any], T]) -> T:
        """Run `job` in the next transaction; returns once that transaction has committed."""
        if self._task.done():
            raise StoreUnavailable("the store is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(job, future))
        # No shield needed: a caller cancelled while waiting cancels only this future, and
        # the job still runs and commits with its batch (_settle skips a future that is done).
        return await future

    async def close(self) -> None:
        self._queue.put_nowait(None)
        await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while (first := await self._queue.get()) is not None:
            batch, stop = self._drain(first)
            outcomes = await loop.run_in_executor(self._executor, self._commit, [p.job for p in batch])
            for pending, (ok, value) in zip(batch, outcomes, strict=True):
                _settle(pending.future, ok, value)
            if stop:
                return

    def _drain(self, first: _Pending) -> tuple[list[_Pending], bool]:
        batch = [first]
        while len(batch) < self._batch_max and not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _commit(self, jobs: list[Callable[[Any], Any]]) -> list[tuple[bool, Any]]:
        """Runs on the writer thread: commit `jobs` in one transaction; one (ok, value) per job."""
        raise NotImplementedError


class WriterTx(SqliteTx):
    """The writer's transaction, carrying the writer's RunningCache for the jobs."""

    def __init__(self, conn: sqlite3.Connection, running: RunningCache) -> None:
        super().__init__(conn)
        self.running = running


class Writer(GroupCommitWriter):
    """The SQLite writer: a batch is one BEGIN IMMEDIATE transaction, one savepoint per job."""

    def __init__(self, conn: sqlite3.Connection, executor: ThreadPoolExecutor, batch_max: int) -> None:
        self._conn = conn
        self.running = RunningCache()
        self._tx = WriterTx(conn, self.running)
        self._data_version: int | None = None
        super().__init__(executor, batch_max)

    def _commit(self, jobs: list[Callable[[Any], Any]]) -> list[tuple[bool, Any]]:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            return [(False, _unavailable(exc))] * len(jobs)
        self._forget_if_changed()
        outcomes = [self._run_job(job) for job in jobs]
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            self.running.clear()  # what this transaction's jobs inserted is gone
            return [(False, _unavailable(exc))] * len(jobs)
        return outcomes

    def _forget_if_changed(self) -> None:
        """Empty the cache of running executions when another connection (another process)
        has committed since this writer's last transaction: it may have finished some of them.
        The guarded update would notice that too; this keeps the cache exact on SQLite."""
        (version,) = self._conn.execute("PRAGMA data_version").fetchone()
        if version != self._data_version:
            self.running.clear()
            self._data_version = version

    def _run_job(self, job: Callable[[Any], Any]) -> tuple[bool, Any]:
        self._conn.execute("SAVEPOINT job")
        try:
            value = job(self._tx)
        except Exception as exc:
            self._conn.execute("ROLLBACK TO job")
            self._conn.execute("RELEASE job")
            self.running.job_failed()
            return False, exc
        self._conn.execute("RELEASE job")
        self.running.job_done()
        return True, value

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):  # no transaction left to roll back
            self._conn.execute("ROLLBACK")


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():
        return  # the caller went away; the write itself stands
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _unavailable(exc: sqlite3.Error) -> StoreError:
    if "locked" in str(exc) or "busy" in str(exc):
        return StoreUnavailable(
            "the database stayed locked by another process past the busy timeout; nothing was written",
            hint="Retry the call; if it persists, raise busy_timeout_ms or find the process holding "
            "the lock.",
        )
    return StoreUnavailable(f"the database could not commit ({exc}); nothing was written")
