"""A second process writing to the same store, driven by the concurrency and durability tests.

    writer.py PATH loop PREFIX CONCURRENCY   start+finish forever; print "ack SPAN STATUS" after each await
    writer.py PATH batch PREFIX N            after "go" on stdin, N start+finish pairs by 10 workers
    writer.py PATH same-key KEY N            after "go" on stdin, N concurrent starts with one idempotency key

Every mode prints "ready" once the store is open. A line is printed only after the write it
reports has been acknowledged, and flushed at once, so what the parent reads was acknowledged."""

from __future__ import annotations

import asyncio
import sys

from store import Store
from store.models import ErrorInput, FinishRequest, StartRequest


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def outcome(span_id: str, n: int) -> FinishRequest:
    """Every third execution fails, so acknowledged statuses differ between rows."""
    if n % 3 == 0:
        return FinishRequest(
            span_id=span_id, status="failed", error=ErrorInput(type="ValueError", message=f"bad {n}")
        )
    return FinishRequest(span_id=span_id, status="success", result=f"done {n}")


async def start_and_finish(store: Store, task_id: str, n: int) -> None:
    started = await store.start(StartRequest(task_id=task_id, actor="subprocess"))
    span_id = started.execution.span_id
    say(f"ack {span_id} running")
    finished = await store.finish(outcome(span_id, n))
    say(f"ack {span_id} {finished.execution.status}")


async def loop(store: Store, prefix: str, concurrency: int) -> None:
    async def worker(w: int) -> None:
        n = 0
        while True:
            await start_and_finish(store, f"{prefix}-{w}", n)
            n += 1

    await asyncio.gather(*(worker(w) for w in range(concurrency)))


async def wait_for_go() -> None:
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if line.strip() != "go":
        raise SystemExit(f"expected 'go' on stdin, got {line!r}")


async def batch(store: Store, prefix: str, count: int) -> None:
    """Ten workers, each writing its share one pair after another, so the load lasts a while."""
    await wait_for_go()

    async def worker(w: int) -> None:
        for n in range(w, count, 10):
            await start_and_finish(store, f"{prefix}-{n}", n)

    await asyncio.gather(*(worker(w) for w in range(10)))
    say("done")


async def same_key(store: Store, key: str, count: int) -> None:
    await wait_for_go()
    request = StartRequest(task_id="keyed", idempotency_key=key)
    results = await asyncio.gather(*(store.start(request) for _ in range(count)))
    for result in results:
        say(f"start {result.execution.span_id} {'duplicate' if result.duplicate else 'new'}")
    say("done")


async def main(path: str, mode: str, name: str, number: int) -> None:
    store = await Store.open(path)
    try:
        say("ready")
        if mode == "loop":
            await loop(store, name, number)
        elif mode == "batch":
            await batch(store, name, number)
        elif mode == "same-key":
            await same_key(store, name, number)
        else:
            raise SystemExit(f"unknown mode {mode!r}")
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
