"""A store outlives its connections: when the server drops them (a restart, a failover, an idle
timeout), the next calls run on new ones instead of failing. And waiting for another process's
write lock is bounded by busy_timeout_ms, like SQLite's busy timeout."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest

from store import BackendOptions, Store, StoreUnavailable
from store.models import StartRequest
from store.postgres.locks import WRITE_LOCK, lock_sql

pytestmark = pytest.mark.postgres

READERS = 3


def backends_named(url: str, name: str) -> list[int]:
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (name,)
        ).fetchall()
    return [pid for (pid,) in found]


async def terminate_all(url: str, name: str) -> int:
    """Terminate every server process serving `name`; returns once they are gone."""
    pids = backends_named(url, name)
    with psycopg.connect(url) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (pids,))
    async with asyncio.timeout(10):
        while backends_named(url, name):
            await asyncio.sleep(0.01)  # polling the server's own process list, bounded by the timeout
    return len(pids)


async def test_connections_the_server_dropped_are_replaced_without_failing_a_call(postgres_url: str) -> None:
    name = f"th-test-{uuid.uuid4().hex[:8]}"
    url = f"{postgres_url}&application_name={name}"
    async with await Store.open(url, options=BackendOptions(readers=READERS)) as store:
        await store.start(StartRequest(task_id="before"))
        assert await terminate_all(postgres_url, name) == 1 + READERS
        started = await store.start(StartRequest(task_id="after"))
        page = await store.list_executions()
    assert not started.duplicate and page.total == 2


async def test_a_writer_waiting_past_busy_timeout_for_another_process_is_store_unavailable(
    postgres_url: str,
) -> None:
    async with await Store.open(postgres_url, options=BackendOptions(busy_timeout_ms=200)) as store:
        with psycopg.connect(postgres_url) as other:  # another process, holding the write lock
            other.execute(lock_sql(WRITE_LOCK))
            with pytest.raises(StoreUnavailable, match="write lock"):
                await store.start(StartRequest(task_id="blocked"))
            other.rollback()
        started = await store.start(StartRequest(task_id="after"))
        assert (await store.list_executions()).total == 1 and started.execution.task_id == "after"
