"""The writer's cache of running executions (store.sqlite.jobs.RunningCache): finishing an
execution this writer started skips reading it back, yet every answer is the one a real read
gives. Another writer (a second Store on the same database, as a second process would be) may
finish the execution first; a job that fails or a transaction that does not commit leaves no
entry behind."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from store import Conflict, NotFound, Policy, Store
from store.backend import BackendOptions
from store.models import ErrorInput, FinishRequest, IOEffects, Retrieval, StartRequest
from store.sqlite import rows
from store.sqlite.backend import connect_writer
from store.sqlite.jobs import Running, RunningCache, WriteContext, finish_job, start_job
from store.sqlite.writer import Writer, WriterTx
from store.timeutil import now_utc


def running_cache(store: Store) -> RunningCache:
    cache = store._backend._writer.running  # type: ignore[attr-defined]
    assert isinstance(cache, RunningCache)
    return cache


def failed(span_id: str) -> FinishRequest:
    return FinishRequest(span_id=span_id, status="failed", error=ErrorInput(type="KeyError", message="gone"))


async def test_finishing_uses_the_execution_this_writer_started(store: Store) -> None:
    span_id = (await store.start(StartRequest(task_id="t"))).execution.span_id
    assert len(running_cache(store)) == 1
    done = await store.finish(FinishRequest(span_id=span_id, status="success", result="ok"))
    assert len(running_cache(store)) == 0
    assert (done.already_finished, done.execution.status, done.execution.result) == (False, "success", "ok")
    assert (await store.get(span_id)).execution == done.execution


async def test_another_writer_finished_it_first_so_the_first_outcome_stands(database_url: str) -> None:
    async with await Store.open(database_url) as mine, await Store.open(database_url) as other:
        spans = [(await mine.start(StartRequest(task_id=f"t{n}"))).execution.span_id for n in range(3)]
        assert len(running_cache(mine)) == 3
        for span_id in spans:
            await other.finish(FinishRequest(span_id=span_id, status="success", result="by the other"))

        with pytest.raises(Conflict, match="already finished as success"):
            await mine.finish(failed(spans[0]))
        again = await mine.finish(FinishRequest(span_id=spans[1], status="success", result="mine"))
        assert (again.already_finished, again.execution.result) == (True, "by the other")
        # An end before the start is refused against a running execution, but this one has
        # finished: the answer is the one a real read gives, not the cached copy's InvalidInput.
        started_at = (await mine.get(spans[2])).execution.started_at
        late = FinishRequest(span_id=spans[2], status="success", ended_at=started_at - timedelta(hours=1))
        assert (await mine.finish(late)).already_finished

        for span_id in spans:
            stored = (await mine.get(span_id)).execution
            assert (stored.status, stored.result) == ("success", "by the other")


async def test_the_finish_keeps_what_the_start_stored_and_writes_the_io_it_declares(store: Store) -> None:
    start = StartRequest(
        task_id="t", parents=["m1", "m2"], causes=["c1"], attributes={"owner": "ann@example.com", "n": 3},
        retrieval=Retrieval(query="mail ann@example.com", source=["experiences"]), task_config_digest="d1",
    )  # fmt: skip
    quiet = (await store.start(start)).execution
    loud = (await store.start(start.model_copy(update={"task_id": "u"}))).execution
    io = IOEffects(files_written=["out/report.json"], tool_calls=["bash"])
    await store.finish(FinishRequest(span_id=quiet.span_id, status="success"))
    await store.finish(FinishRequest(span_id=loud.span_id, status="success", io=io))

    for started, wanted_io in ((quiet, IOEffects()), (loud, io)):
        stored = (await store.get(started.span_id)).execution
        assert stored.attributes == {"owner": "[EMAIL]", "n": 3}
        assert (stored.retrieval, stored.parents, stored.causes) == (started.retrieval, ["m1", "m2"], ["c1"])
        assert (stored.task_config_digest, stored.io) == ("d1", wanted_io)
    found = await store.side_effects("file", "out/report.json")
    assert [m.execution.span_id for m in found.matches] == [loud.span_id]


# ---- the guarded update, without the SQLite writer's "another connection committed" check ----


def run_in_transaction(conn: sqlite3.Connection, job: Callable[[WriterTx], Any], tx: WriterTx) -> Any:
    conn.execute("BEGIN IMMEDIATE")
    try:
        value = job(tx)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return value


async def test_a_cached_execution_finished_elsewhere_is_answered_from_a_real_read(db_path: Path) -> None:
    """The jobs alone on a real file, with a cache that nothing empties: only the guarded UPDATE
    can tell that another writer finished the execution."""
    async with await Store.open(str(db_path)) as other:
        with closing(connect_writer(str(db_path), BackendOptions())) as conn:
            cache = RunningCache()
            tx = WriterTx(conn, cache)

            def ctx() -> WriteContext:
                return WriteContext(Policy(), now_utc())

            spans = [
                run_in_transaction(conn, start_job(StartRequest(task_id="t"), ctx()), tx).execution.span_id
                for _ in range(3)
            ]
            assert len(cache) == 3
            for span_id in spans:
                await other.finish(FinishRequest(span_id=span_id, status="success", result="elsewhere"))

            with pytest.raises(Conflict, match="already finished as success"):
                run_in_transaction(conn, finish_job(failed(spans[0]), ctx()), tx)
            same = run_in_transaction(
                conn, finish_job(FinishRequest(span_id=spans[1], status="success"), ctx()), tx
            )
            assert (same.already_finished, same.execution.result) == (True, "elsewhere")
            started_at = (await other.get(spans[2])).execution.started_at
            late = FinishRequest(span_id=spans[2], status="success", ended_at=started_at - timedelta(hours=1))
            assert run_in_transaction(conn, finish_job(late, ctx()), tx).already_finished
            assert len(cache) == 0
            stored = conn.execute("SELECT status, result FROM executions ORDER BY seq").fetchall()
            assert stored == [("success", "elsewhere")] * 3


async def test_a_cached_execution_removed_elsewhere_is_not_found(db_path: Path) -> None:
    async with await Store.open(str(db_path)):
        pass  # the schema
    with closing(connect_writer(str(db_path), BackendOptions())) as conn:
        cache = RunningCache()
        tx = WriterTx(conn, cache)
        ctx = WriteContext(Policy(), now_utc())
        span_id = run_in_transaction(conn, start_job(StartRequest(task_id="t"), ctx), tx).execution.span_id
        with closing(sqlite3.connect(db_path)) as elsewhere:
            elsewhere.execute("DELETE FROM executions WHERE span_id = ?", (span_id,))
            elsewhere.commit()
        with pytest.raises(NotFound):
            run_in_transaction(conn, finish_job(FinishRequest(span_id=span_id, status="success"), ctx), tx)


# ---- the writer keeps the cache in step with its transactions --------------------------------


async def test_a_failed_job_leaves_no_entry_and_another_connections_commit_empties_the_cache(
    db_path: Path,
) -> None:
    async with await Store.open(str(db_path)):
        pass  # the schema
    executor = ThreadPoolExecutor(max_workers=1)
    conn = await asyncio.get_running_loop().run_in_executor(
        executor, connect_writer, str(db_path), BackendOptions()
    )
    writer = Writer(conn, executor, 100)
    try:
        ctx = WriteContext(Policy(), now_utc())
        doomed = StartRequest(task_id="t", span_id=str(uuid.uuid4()))

        def start_then_fail(tx: WriterTx) -> None:
            start_job(doomed, ctx)(tx)
            assert len(tx.running) == 1
            raise RuntimeError("the job fails after its insert")

        with pytest.raises(RuntimeError):
            await writer.submit(start_then_fail)
        assert len(writer.running) == 0
        with pytest.raises(NotFound):
            await writer.submit(finish_job(FinishRequest(span_id=doomed.span_id, status="success"), ctx))

        kept = await writer.submit(start_job(StartRequest(task_id="t"), ctx))
        assert len(writer.running) == 1
        with closing(sqlite3.connect(db_path)) as elsewhere:
            elsewhere.execute("UPDATE tasks SET updated_us = updated_us + 1")  # any commit at all
            elsewhere.commit()
        await writer.submit(start_job(StartRequest(task_id="u"), ctx))
        assert len(writer.running) == 1  # only the new one: the first may have changed
        done = await writer.submit(
            finish_job(FinishRequest(span_id=kept.execution.span_id, status="success"), ctx)
        )
        assert done.execution.status == "success" and not done.already_finished
    finally:
        await writer.close()
        conn.close()
        executor.shutdown()


def test_the_cache_forgets_the_oldest_entry_past_its_limit() -> None:
    cache = RunningCache(limit=2)
    entries = {}
    for name in ("a", "b", "c"):
        entries[name] = Running(execution=None, detail=name)  # type: ignore[arg-type]
        cache.put(name, entries[name])
    cache.job_done()
    assert len(cache) == 2
    assert (cache.take("a"), cache.take("b"), cache.take("c")) == (None, entries["b"], entries["c"])
    nothing = RunningCache(limit=0)
    nothing.put("a", entries["a"])
    assert len(nothing) == 0


def test_the_detail_of_a_finish_is_the_detail_of_its_row() -> None:
    """rows.outcome_row takes the start's detail text when the caller passes it; that text is
    what _detail makes of the finished execution whenever its io did not change."""
    from store import rules

    ctx = WriteContext(Policy(), now_utc())
    started = rules.new_execution(
        StartRequest(task_id="t", attributes={"k": [1, "x"]}), ctx.policy, rules.Lineage(), ctx.now
    )
    done = rules.finished(
        started, FinishRequest(span_id=started.span_id, status="success"), ctx.policy, ctx.now
    )
    assert rows.outcome_row(done, rows.detail_text(started)) == rows.outcome_row(done)
