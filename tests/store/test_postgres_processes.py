"""Two real processes, each with its own Store, writing one PostgreSQL schema at the same moment:
one idempotency key makes one execution, every acknowledged write is stored once, a retry chain
stays a chain, task rows lose no update, and out-of-order events are flagged exactly when they
are out of order. These hold because every write transaction takes the same advisory lock
(store.postgres.locks); without it the read-modify-write of `tasks` loses updates.

This file is also the child program: `python test_postgres_processes.py URL MODE NAME ARG N` opens
a Store on URL, prints "ready", waits for "go" on stdin, does MODE N times (NAME says which child
it is, ARG is the mode's shared key or trace), printing one line per acknowledged write, then "done"."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from store import Conflict, Store
from store.models import ErrorInput, EventRequest, FinishRequest, StartRequest

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 60
T0 = datetime(2025, 11, 4, tzinfo=UTC)
SHARED_TASKS = 5


# ---- the child ---------------------------------------------------------------------------------


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def same_key(store: Store, name: str, key: str, count: int) -> None:
    request = StartRequest(task_id="keyed", idempotency_key=key)
    for result in await asyncio.gather(*(store.start(request) for _ in range(count))):
        say(f"start {result.execution.span_id} {'duplicate' if result.duplicate else 'new'}")


async def pairs(store: Store, name: str, _: str, count: int) -> None:
    """`count` start+finish pairs by ten workers, on task ids both processes share."""

    async def worker(w: int) -> None:
        for n in range(w, count, 10):
            started = await store.start(StartRequest(task_id=f"shared-{n % SHARED_TASKS}", actor=name))
            await store.finish(FinishRequest(span_id=started.execution.span_id, status="success"))
            say(f"ack {started.execution.span_id}")

    await asyncio.gather(*(worker(w) for w in range(10)))


async def retries(store: Store, name: str, trace_id: str, count: int) -> None:
    """Retry the trace's latest attempt `count` times, racing the other process for each one."""
    done = 0
    while done < count:
        latest = max((await store.trace(trace_id)).executions, key=lambda e: e.attempt)
        try:
            started = await store.start(StartRequest(task_id="chain", retry_of=latest.span_id))
        except Conflict:
            continue  # the other process retried it first: retry its attempt instead
        error = ErrorInput(type="Flaky", message=f"attempt {started.execution.attempt}")
        await store.finish(FinishRequest(span_id=started.execution.span_id, status="failed", error=error))
        say(f"retry {started.execution.span_id} {started.execution.attempt}")
        done += 1


async def events(store: Store, name: str, _: str, count: int) -> None:
    """Events on one task with timestamps that interleave with the other process's, five at a time."""
    offset = int(name == "b")
    for first in range(0, count, 5):
        batch = [
            EventRequest(event_type="acme.tick", task_id="ticking", ts=T0 + timedelta(seconds=2 * n + offset))
            for n in range(first, min(first + 5, count))
        ]
        for result in await asyncio.gather(*(store.log_event(e) for e in batch)):
            say(f"event {result.event.event_id}")


MODES: dict[str, Callable[[Store, str, str, int], Awaitable[None]]] = {
    "same-key": same_key,
    "pairs": pairs,
    "retries": retries,
    "events": events,
}


async def child(url: str, mode: str, name: str, arg: str, count: int) -> None:
    async with await Store.open(url) as store:
        say("ready")
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        if line.strip() != "go":
            raise SystemExit(f"expected 'go' on stdin, got {line!r}")
        await MODES[mode](store, name, arg, count)
        say("done")


# ---- the parent --------------------------------------------------------------------------------


class Child:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def line(self) -> str:
        assert self.proc.stdout is not None
        return (await self.proc.stdout.readline()).decode().rstrip("\n")

    async def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        await self.proc.stdin.drain()

    async def lines_until_done(self) -> list[str]:
        lines = []
        while (line := await self.line()) not in ("done", ""):
            lines.append(line)
        assert line == "done", f"the child died: {await self.stderr()}"
        return lines

    async def stderr(self) -> str:
        if self.proc.returncode is None:
            self.proc.kill()
        assert self.proc.stderr is not None
        return (await self.proc.stderr.read()).decode()


Spawn = Callable[[str, str, str, str, int], Awaitable[Child]]


@pytest.fixture
async def spawn() -> AsyncIterator[Spawn]:
    started: list[asyncio.subprocess.Process] = []

    async def run(url: str, mode: str, name: str, arg: str, count: int) -> Child:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, url, mode, name, arg, str(count),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
        started.append(proc)
        found = Child(proc)
        async with asyncio.timeout(TIMEOUT_S):
            assert await found.line() == "ready", await found.stderr()
        return found

    yield run
    for proc in started:
        if proc.returncode is None:
            proc.kill()
        await proc.communicate()


async def both(spawn: Spawn, url: str, mode: str, count: int, arg: str = "-") -> tuple[list[str], list[str]]:
    """Run `mode` in two processes released at the same moment; their output lines."""
    a, b = await spawn(url, mode, "a", arg, count), await spawn(url, mode, "b", arg, count)
    async with asyncio.timeout(TIMEOUT_S), asyncio.TaskGroup() as group:  # one failing cancels the other
        await asyncio.gather(a.go(), b.go())
        lines_a, lines_b = group.create_task(a.lines_until_done()), group.create_task(b.lines_until_done())
    assert await a.proc.wait() == 0 and await b.proc.wait() == 0
    return lines_a.result(), lines_b.result()


def scalar(url: str, sql: str) -> object:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None
    return row[0]


async def test_one_key_started_from_two_processes_at_once_makes_exactly_one_execution(
    postgres_url: str, spawn: Spawn
) -> None:
    lines_a, lines_b = await both(spawn, postgres_url, "same-key", 20, arg="nightly-2025-11-04")
    words = [line.split() for line in lines_a + lines_b]
    assert len(words) == 40 and len({span for _, span, _ in words}) == 1
    assert [kind for _, _, kind in words].count("new") == 1
    assert scalar(postgres_url, "SELECT COUNT(*) FROM executions") == 1


async def test_distinct_writes_from_two_processes_are_all_stored_once_and_no_task_update_is_lost(
    postgres_url: str, spawn: Spawn
) -> None:
    n = 100
    lines_a, lines_b = await both(spawn, postgres_url, "pairs", n)
    acknowledged = {line.split()[1] for line in lines_a + lines_b}
    async with await Store.open(postgres_url) as store:
        page = await store.list_executions(limit=1)
        tasks = [await store.task_status(f"shared-{t}") for t in range(SHARED_TASKS)]
    assert len(acknowledged) == page.total == 2 * n
    assert scalar(postgres_url, "SELECT COUNT(*) FROM executions WHERE status = 'success'") == 2 * n
    # Each start read-modify-writes its task's row; a lost update would show as a short count.
    assert sum(t.attempts for t in tasks) == 2 * n


async def test_a_retry_chain_raced_by_two_processes_stays_one_unbroken_chain(
    postgres_url: str, spawn: Spawn
) -> None:
    async with await Store.open(postgres_url) as store:
        first = await store.start(StartRequest(task_id="chain"))
        await store.finish(
            FinishRequest(
                span_id=first.execution.span_id, status="failed", error=ErrorInput(type="Flaky", message="1")
            )
        )
        trace_id = first.execution.trace_id
        n = 15
        lines_a, lines_b = await both(spawn, postgres_url, "retries", n, arg=trace_id)
        chain = sorted((await store.trace(trace_id)).executions, key=lambda e: e.attempt)
        task = await store.task_status("chain")
    assert [e.attempt for e in chain] == list(range(1, 2 * n + 2))
    assert [e.retry_of for e in chain[1:]] == [e.span_id for e in chain[:-1]]
    assert len(lines_a) == len(lines_b) == n
    assert (task.attempts, task.current_span_id, task.state) == (2 * n + 1, chain[-1].span_id, "failed")


async def test_events_from_two_processes_are_flagged_late_exactly_when_they_arrive_out_of_order(
    postgres_url: str, spawn: Spawn
) -> None:
    n = 60
    lines_a, lines_b = await both(spawn, postgres_url, "events", n)
    with psycopg.connect(postgres_url) as conn:
        stored = conn.execute(
            "SELECT ts_us, anomaly FROM events WHERE task_id = 'ticking' ORDER BY seq"
        ).fetchall()
        last_event_us = conn.execute("SELECT last_event_us FROM tasks WHERE task_id = 'ticking'").fetchone()
    assert len(stored) == len(lines_a) + len(lines_b) == 2 * n
    newest, expected = 0, []
    for ts_us, _ in stored:  # in the order the writes committed
        expected.append(ts_us < newest)
        newest = max(newest, ts_us)
    assert [bool(anomaly and "out of order" in anomaly) for _, anomaly in stored] == expected
    assert 0 < sum(expected) < len(expected), "the two processes' events did not interleave"
    assert last_event_us == (newest,)


if __name__ == "__main__":
    asyncio.run(child(*sys.argv[1:5], int(sys.argv[5])))
