"""A large generated history for the answer-size tests: thousands of executions with long stacks,
long results, many side effects and many events, one task far busier than the rest, retry chains,
workers, and one trace with a thousand events.

It is written the way the benchmarks load theirs, around the store: the store opens the file once
(its migrations make the schema), then rows made by the store's own `execution_row` / `event_row`
go in with `executemany`, and `store.sqlite.derived.rebuild` fills the failure and side-effect
indexes from them. A few seconds for the whole file; the tests share it per module."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from store import Store
from store.fingerprint import stack_hash
from store.models import ErrorInfo, Execution, IOEffects, LifecycleEvent, Retrieval, Usage
from store.sqlite import derived, rows

T0 = datetime(2025, 6, 1, tzinfo=UTC)
EXECUTIONS = 4_000
BUSY_TASK = "busy-task"
QUIET_TASK = "quiet-task"
TASKS = [BUSY_TASK, *(f"task-{n:02d}" for n in range(1, 40))]
ERRORS = [
    ("TimeoutError", "retrieval timed out after {n} s"),
    ("KeyError", "user {n} missing"),
    ("ConnectionError", "connection to db-{n}.internal reset by peer"),
    ("ValueError", "bad payload: " + "field x{n} " * 150),  # a long message
    ("RuntimeError", "worker {n} crashed"),
]
WORDS = [
    "the",
    "agent",
    "wrote",
    "a",
    "report",
    "about",
    "the",
    "failing",
    "job",
    "and",
    "the",
    "retry",
    "that",
    "fixed",
    "it",
]


@dataclass
class BigHistory:
    path: Path
    busy_task: str = BUSY_TASK
    quiet_task: str = QUIET_TASK
    big_trace: str = ""  # the trace with ~1,000 events
    retry_trace: str = ""  # a failed attempt, then a retry that succeeded
    long_failure: str = ""  # span_id of a failure with a long stack, message and result
    worker_span: str = ""
    file: str = ""
    spans: list[str] = field(default_factory=list)


def _uuid(rng: random.Random) -> str:
    a, b, c, d, e = (rng.getrandbits(bits) for bits in (32, 16, 12, 12, 48))
    return f"{a:08x}-{b:04x}-4{c:03x}-8{d:03x}-{e:012x}"


def _stack(rng: random.Random, kind: int) -> str:
    frames = "".join(
        f'  File "/srv/app/pkg{kind}/module{k}.py", line {rng.randint(1, 900)}, in step_{k}\n'
        f"    run_step_{k}(ctx)\n"
        for k in range(rng.randint(40, 300))
    )
    return f"Traceback (most recent call last):\n{frames}{ERRORS[kind][0]}: boom"


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def _execution(rng: random.Random, n: int, history: BigHistory, previous: Execution | None) -> Execution:
    if n % 400 == 7:  # a quiet task with short texts, whose answers fit whole
        return _quiet(n)
    task = BUSY_TASK if n % 3 == 0 else TASKS[n % len(TASKS)]
    started = T0 + timedelta(minutes=n * 7)
    retry = previous is not None and previous.status == "failed" and previous.task_id == task and n % 2 == 0
    status = "failed" if n % 6 == 1 or (n % 6 == 3 and not retry) else "running" if n % 97 == 5 else "success"
    kind = n % len(ERRORS)
    error = None
    if status == "failed":
        message, stack = ERRORS[kind][1].format(n=n % 17), _stack(rng, kind)
        error = ErrorInfo(
            type=ERRORS[kind][0], message=message, stack=stack, stack_hash=stack_hash(ERRORS[kind][0], stack)
        )
    span = _uuid(rng)
    worker = n % 23 == 4 and previous is not None
    ended = None if status == "running" else started + timedelta(milliseconds=rng.randint(5, 600_000))
    files = [f"reports/{task}/{n % 50}/part-{k}.json" for k in range(rng.randint(1, 30))]
    return Execution(
        execution_id=f"task_exec_{task}_{n}",
        task_id=task,
        task_slug=task,
        task_name=f"Task {task}",
        task_type=["reflection", "ingest", "review"][n % 3],
        actor=f"agent-{n % 9}",
        worker_id=f"worker-{n % 5}" if worker else None,
        trace_id=previous.trace_id if (retry or worker) and previous else _uuid(rng),
        span_id=span,
        parent_span_id=previous.span_id if worker and previous else None,
        attempt=previous.attempt + 1 if retry and previous and not worker else 1,
        retry_of=previous.span_id if retry and previous and not worker else None,
        status=status,
        started_at=started,
        ended_at=ended,
        duration_ms=None if ended is None else int((ended - started).total_seconds() * 1000),
        error=error,
        retrieval=Retrieval(memory_count=2, query="similar failures " * 5, source=["episodic"]),
        parents=["mem-a", "mem-b"],
        io=IOEffects(files_written=files, tool_calls=["grep", f"tool-{n % 7}"]),
        usage=Usage(input_tokens=rng.randint(100, 9000), output_tokens=rng.randint(10, 900), cost=0.01),
        result=_text(rng, rng.choice([5, 50, 4000])) if status != "running" else None,
        attributes={"model": "agent-large", "notes": _text(rng, 40)},
        session_id=f"task:{task}:{n}",
        created_at=started,
    )


def _quiet(n: int) -> Execution:
    started = T0 + timedelta(minutes=n * 7)
    failed = n % 800 == 7
    error = ErrorInfo(type="KeyError", message=f"key {n} missing", stack_hash="q1") if failed else None
    return Execution(
        execution_id=f"task_exec_quiet_{n}",
        task_id=QUIET_TASK,
        task_slug=QUIET_TASK,
        trace_id=f"quiet-{n}",
        span_id=f"quiet-span-{n}",
        status="failed" if failed else "success",
        started_at=started,
        ended_at=started + timedelta(seconds=3),
        duration_ms=3000,
        error=error,
        io=IOEffects(files_written=[f"quiet/{n}.txt"]),
        result="ok",
        session_id=f"task:quiet:{n}",
        created_at=started,
    )


def _events(rng: random.Random, e: Execution, count: int) -> list[LifecycleEvent]:
    kinds = ["task_started", "agent.progress", "agent.checkpoint", "agent.progress", "task_completed"]
    return [
        LifecycleEvent(
            event_id=_uuid(rng),
            event_type=kinds[k % len(kinds)],
            task_id=e.task_id,
            trace_id=e.trace_id,
            span_id=e.span_id,
            actor=e.actor,
            ts=e.started_at + timedelta(seconds=k),
            data={"step": k, "log": _text(rng, rng.choice([3, 300]))},
            recorded_at=e.started_at,
        )
        for k in range(count)
    ]


async def build(path: Path, seed: int = 5) -> BigHistory:
    await (await Store.open(str(path))).close()  # the schema, by the store's own migrations
    rng = random.Random(seed)
    history = BigHistory(path)
    executions: list[Execution] = []
    events: list[LifecycleEvent] = []
    previous = None
    for n in range(EXECUTIONS):
        e = _execution(rng, n, history, previous)
        executions.append(e)
        big = n == 500
        events += _events(rng, e, 1000 if big else 0 if e.task_id == QUIET_TASK else rng.randint(2, 8))
        history.big_trace = e.trace_id if big else history.big_trace
        if e.retry_of and e.status == "success" and not history.retry_trace:
            history.retry_trace = e.trace_id
        if e.error and len(e.error.message) > 1000 and e.result and len(e.result) > 10_000:
            history.long_failure = history.long_failure or e.span_id
        history.worker_span = history.worker_span or (e.span_id if e.worker_id else "")
        previous = e
    history.spans = [e.span_id for e in executions]
    history.file = executions[-1].io.files_written[0]
    _load(path, executions, events)
    return history


def _load(path: Path, executions: list[Execution], events: list[LifecycleEvent]) -> None:
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("BEGIN")
        for table, columns, values in (
            ("executions", rows.EXECUTION_COLUMNS, [rows.execution_row(e) for e in executions]),
            ("events", rows.EVENT_COLUMNS, [rows.event_row(ev) for ev in events]),
        ):
            marks = ", ".join("?" * len(columns))
            conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", values)
        derived.rebuild(conn)
        conn.execute("COMMIT")


if __name__ == "__main__":  # python tests/server/big_history.py /tmp/big.db
    import sys

    print(asyncio.run(build(Path(sys.argv[1]))))
