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
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from store.errors import StoreError, StoreUnavailable
from store.sqlite.jobs import RunningCache
from store.sqlite.tx import SqliteTx

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Pending:
    job: Callable[[Any], Any]
    future: asyncio.Future[Any]


Outcome = tuple[bool, Any]
"""(True, the job's value) or (False, the exception it raised)."""


class GroupCommitWriter:
    """Queues jobs for a thread of its own, which commits each batch with `_commit`.

    The thread takes jobs from a thread-safe queue itself, so a job queued while the event loop
    is busy starts as soon as the thread gets to run, and a whole batch is answered with one
    wake-up of the loop. (Before, an asyncio task handed each batch to an executor: two more
    hand-offs a batch, and a batch waited for the loop's turn to start; MCP writes went ~10%
    faster without them.) The thread is a daemon: a store that is never closed must not keep
    the process from exiting."""

    def __init__(self, executor: ThreadPoolExecutor, batch_max: int) -> None:
        self._executor = executor  # the engine's thread for everything but batches (open, close)
        self._batch_max = batch_max
        self._loop = asyncio.get_running_loop()
        self._jobs: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._closed = False
        self._stopped: asyncio.Future[None] = self._loop.create_future()
        threading.Thread(target=self._serve, name="task-history-writer", daemon=True).start()

    async def submit(self, job: Callable[[Any], T]) -> T:
        """Run `job` in the next transaction; returns once that transaction has committed."""
        if self._closed:
            raise StoreUnavailable("the store is closed")
        future: asyncio.Future[T] = self._loop.create_future()
        self._jobs.put(_Pending(job, future))
        # No shield needed: a caller cancelled while waiting cancels only this future, and
        # the job still runs and commits with its batch (_settle skips a future that is done).
        return await future

    async def close(self) -> None:
        """Commit what is queued, then stop the thread."""
        if not self._closed:
            self._closed = True  # submit refuses from now on, so nothing queues behind the stop
            self._jobs.put(None)
        await asyncio.shield(self._stopped)

    def _serve(self) -> None:
        """The writer thread: wait for a job, take the jobs queued behind it, commit, answer."""
        stop = False
        while not stop and (first := self._jobs.get()) is not None:
            batch, stop = self._drain(first)
            outcomes = self._commit_or_fail([p.job for p in batch])
            if not self._answer(_settle_all, batch, outcomes):
                return  # the event loop is gone: nobody is waiting
        self._answer(_set_stopped, self._stopped)

    def _drain(self, first: _Pending) -> tuple[list[_Pending], bool]:
        batch = [first]
        while len(batch) < self._batch_max:
            try:
                item = self._jobs.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _commit_or_fail(self, jobs: list[Callable[[Any], Any]]) -> list[Outcome]:
        """`_commit`, but a bug in it fails its batch instead of leaving the callers waiting forever."""
        try:
            return self._commit(jobs)
        except BaseException as exc:  # even those: on this thread nothing else would tell the callers
            failed = StoreUnavailable(f"the writer failed ({exc!r}); nothing of this batch was written")
            return [(False, failed)] * len(jobs)

    def _answer(self, callback: Callable[..., None], *args: Any) -> bool:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is closed
            return False
        return True

    def _commit(self, jobs: list[Callable[[Any], Any]]) -> list[Outcome]:
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

    async def close(self) -> None:
        await super().close()
        await asyncio.get_running_loop().run_in_executor(self._executor, self._conn.close)

    def _commit(self, jobs: list[Callable[[Any], Any]]) -> list[Outcome]:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            return [(False, _unavailable(exc))] * len(jobs)
        try:
            self._forget_if_changed()
            outcomes = [self._run_job(job) for job in jobs]
            self._conn.execute("COMMIT")
        except BaseException as exc:
            # Never leave the transaction open: it would hold the write lock and keep every
            # later batch from beginning.
            self._rollback()
            self.running.clear()  # what this transaction's jobs inserted is gone
            if isinstance(exc, sqlite3.Error):
                return [(False, _unavailable(exc))] * len(jobs)
            raise
        return outcomes

    def _forget_if_changed(self) -> None:
        """Empty the cache of running executions when another connection (another process)
        has committed since this writer's last transaction: it may have finished some of them.
        The guarded update would notice that too; this keeps the cache exact on SQLite."""
        (version,) = self._conn.execute("PRAGMA data_version").fetchone()
        if version != self._data_version:
            self.running.clear()
            self._data_version = version

    def _run_job(self, job: Callable[[Any], Any]) -> Outcome:
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


def _settle_all(batch: list[_Pending], outcomes: list[Outcome]) -> None:
    for pending, (ok, value) in zip(batch, outcomes, strict=True):
        _settle(pending.future, ok, value)


def _set_stopped(stopped: asyncio.Future[None]) -> None:
    if not stopped.done():
        stopped.set_result(None)


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
