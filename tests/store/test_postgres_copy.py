"""`store.admin.copy_history` moves a whole history between backends without loss: SQLite to
PostgreSQL and back gives the same executions, events, task states and query answers, row for
row; copying again adds nothing; a copy of a live source catches up on its next run; and a row
that collides with a different one in the target is reported, not dropped silently."""

from __future__ import annotations

import sqlite3
import traceback
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from store import InvalidInput, Store
from store.admin import CopyReport, copy_history
from store.backend import BackendOptions
from store.engines import open_backend
from store.models import (
    ErrorInput,
    EventRequest,
    FinishRequest,
    IOEffects,
    ProvenanceRunner,
    RecordRequest,
    Retrieval,
    StartRequest,
    Usage,
)
from store.rules import Policy
from store.transfer import TABLES

pytestmark = pytest.mark.postgres

T0 = datetime(2025, 11, 4, 18, 29, 12, 123456, tzinfo=UTC)


RETRIEVAL = Retrieval(
    memory_count=2, query="recent", filters={"type": "OBS"}, latency_ms=28, source=["experiences"]
)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def real_traceback(n: int) -> str:
    try:
        {}[f"key-{n}"]
    except KeyError:
        return traceback.format_exc()
    raise AssertionError("unreachable")


async def log(store: Store, event_type: str, minute: float, task_id: str, **data: Any) -> None:
    await store.log_event(
        EventRequest(event_type=event_type, task_id=task_id, actor="lead", data=data, ts=at(minute))
    )


async def build_history(store: Store) -> None:
    """Every kind of row: rich records, a retry chain, failures in two groups, ties in start time,
    a running execution, an event-driven task with a worker, notes, a late event, a custom event."""
    first = await store.record(
        RecordRequest(
            task_id="reflect", status="failed", started_at=at(0), error=ErrorInput(type="E", message="m")
        )
    )
    await store.record(RecordRequest(
        task_id="reflect", task_name="Daily Self-Reflection", task_type="reflection", trigger="scheduled",
        scheduled_at=at(1), started_at=at(1), ended_at=at(1.5), status="partial", actor="scheduler",
        retry_of=first.execution.span_id, retrieval=RETRIEVAL,
        parents=["exp_1", "exp_2"], causes=["goal_9"], attributes={"k": [1, 2], "who": "ann@example.com"},
        io=IOEffects(files_written=["out.json"], tool_calls=["tc-1"]), result="Wrote it.",
        usage=Usage(input_tokens=1200, output_tokens=300, cost=0.0123), task_config_digest="sha256:abc",
        provenance_runner=ProvenanceRunner(name="scheduler", version="1.0.0", pid=7),
        error=ErrorInput(type="Warning", message="one source was slow"),
    ))  # fmt: skip
    for n in range(12):  # two failure groups, and several executions starting at the same instant
        error = (
            ErrorInput(type="KeyError", message=f"missing {n}", stack=real_traceback(n))
            if n % 3 == 0
            else None
        )
        status = "failed" if error else ("success", "cancelled")[n % 2]
        await store.record(
            RecordRequest(
                task_id=f"batch-{n % 4}", started_at=at(10 + n // 3), status=status, error=error, actor="cron"
            )
        )
    await store.start(StartRequest(task_id="long-running", actor="agent-7", idempotency_key="still-going"))
    task = "walk"
    for step, minute, data in (
        ("task_created", 20, {"priority": "high"}),
        ("task_assigned", 21, {"to": "lead"}),
        ("task_started", 22, {}),
        ("worker_spawned", 23, {"worker_id": "w-1", "worker_type": "scan"}),
        ("worker_progress", 24, {"worker_id": "w-1", "note": "half way"}),
        ("worker_completed", 25, {"worker_id": "w-1", "result": "3 findings"}),
        ("task_blocked", 26, {"reason": "waiting for review"}),
        ("task_unblocked", 27, {}),
        ("acme.deploy", 28, {"env": "prod", "ip": "10.0.0.7"}),
        ("task_completed", 30, {"status": "success", "deliverables": ["report.json"]}),
        ("task_assigned", 29, {"to": "late"}),  # out of order: kept with an anomaly
    ):
        await log(store, step, minute, task, **data)


async def everything(store: Store) -> dict[str, Any]:
    """Every answer the store gives about its whole history, in the order it gives them."""
    executions, cursor = [], None
    while True:
        page = await store.list_executions(limit=100, cursor=cursor)
        executions += page.executions
        if not page.has_more:
            break
        cursor = page.next_cursor
    task_ids = sorted({e.task_id for e in executions})
    failed = await store.last_failed(limit=50)
    return {
        "executions": executions,
        "details": [await store.get(e.span_id) for e in executions],
        "traces": [await store.trace(t) for t in sorted({e.trace_id for e in executions})],
        "timelines": [await store.timeline(t) for t in task_ids],
        "statuses": [await store.task_status(t) for t in task_ids],
        "failed": (failed.failures, failed.error_patterns, failed.total_failures, failed.patterns_total),
        "unique": (await store.last_failed(limit=50, unique_errors=True)).failures,
    }


async def raw_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every stored row without its engine-assigned seq (which a copy renumbers in order)."""
    backend = await open_backend(url, Policy(), BackendOptions())
    try:
        found: dict[str, list[tuple[Any, ...]]] = {}
        for table in TABLES:
            rows = await backend.scan_rows(table, 0 if table != "tasks" else "", 10_000)
            found[table] = [row[1:] for row in rows]
        return found
    finally:
        await backend.close()


async def test_a_history_copied_to_postgres_and_back_is_the_same_in_every_answer_and_every_row(
    tmp_path: Path, postgres_url: str
) -> None:
    source, back = str(tmp_path / "source.db"), str(tmp_path / "back.db")
    async with await Store.open(source) as store:
        await build_history(store)
        original = await everything(store)
    events = [e for timeline in original["timelines"] for e in timeline.events]
    assert any(e.anomaly for e in events) and any(t.notes for t in original["statuses"])
    assert {"running", "failed", "partial"} <= {e.status for e in original["executions"]}
    assert any(e.worker_id for e in original["executions"]) and [p.count for p in original["failed"][1]] == [
        4,
        1,
    ]

    there = await copy_history(source, postgres_url, batch=7)
    again = await copy_history(postgres_url, back, batch=5)

    async with await Store.open(postgres_url) as on_postgres, await Store.open(back) as on_sqlite:
        assert await everything(on_postgres) == original
        assert await everything(on_sqlite) == original
    assert await raw_rows(source) == await raw_rows(postgres_url) == await raw_rows(back)
    counts = {table: len(rows) for table, rows in (await raw_rows(source)).items()}
    for report in (there, again):
        assert (report.executions.copied, report.events.copied, report.tasks.copied) == tuple(counts.values())
        assert report.conflicts == []


async def test_copying_again_adds_nothing(tmp_path: Path, postgres_url: str) -> None:
    source = str(tmp_path / "source.db")
    async with await Store.open(source) as store:
        await build_history(store)
    await copy_history(source, postgres_url)
    before = await raw_rows(postgres_url)
    report = await copy_history(source, postgres_url, batch=3)
    assert await raw_rows(postgres_url) == before
    assert report.copied == 0 and report.conflicts == []
    assert [getattr(report, t).skipped for t in TABLES] == [len(before[t]) for t in TABLES]


async def test_a_copy_of_a_live_source_catches_up_on_its_next_run(tmp_path: Path, postgres_url: str) -> None:
    source = str(tmp_path / "source.db")
    async with await Store.open(source) as store:
        running = (await store.start(StartRequest(task_id="live"))).execution
        await copy_history(source, postgres_url)
        await store.finish(FinishRequest(span_id=running.span_id, status="success", result="done"))
        await store.log_event(EventRequest(event_type="acme.note", task_id="live", data={"n": 1}))
        report = await copy_history(source, postgres_url)
        expected = await everything(store)
    async with await Store.open(postgres_url) as target:
        assert await everything(target) == expected
    assert (report.executions.updated, report.events.copied, report.tasks.updated) == (1, 1, 1)


async def test_a_row_that_collides_with_a_different_one_is_reported_and_the_rest_copied(
    tmp_path: Path, postgres_url: str
) -> None:
    source = str(tmp_path / "source.db")
    async with await Store.open(source) as store:
        theirs = await store.start(StartRequest(task_id="keyed", idempotency_key="nightly"))
        await store.start(StartRequest(task_id="other"))
    async with await Store.open(postgres_url) as target:
        ours = await target.start(StartRequest(task_id="keyed", idempotency_key="nightly"))
    report = await copy_history(source, postgres_url)
    assert report.executions.copied == 1 and len(report.conflicts) == 1
    assert theirs.execution.span_id in report.conflicts[0] and "idempotency_key" in report.conflicts[0]
    async with await Store.open(postgres_url) as target:
        kept = await target.list_executions()
    assert ours.execution.span_id in {e.span_id for e in kept.executions} and kept.total == 2


@pytest.mark.parametrize("target", ["postgres", "sqlite"])
@pytest.mark.parametrize("batch", [1, 1000])
async def test_a_row_holding_nul_is_reported_naming_its_column_and_every_other_row_copied(
    tmp_path: Path, postgres_url: str, batch: int, target: str
) -> None:
    """A SQLite file written before the store refused NUL may hold one; PostgreSQL cannot, and no
    write or import takes one now. The copy reports that row, naming the column, on either target
    alike, and copies the rows and tables after it, in its batch or not."""
    to = postgres_url if target == "postgres" else str(tmp_path / "target.db")
    source = str(tmp_path / "source.db")
    async with await Store.open(source) as store:
        runs = [RecordRequest(task_id=f"t{n}", status="success", started_at=at(n)) for n in range(3)]
        spans = [(await store.record(run)).execution.span_id for run in runs]
        await log(store, "task_created", 5, "t0")
    with sqlite3.connect(source) as conn:
        conn.execute("UPDATE executions SET result = 'a' || char(0) || 'b' WHERE span_id = ?", (spans[1],))
    report = await copy_history(source, to, batch=batch)
    assert report.executions.copied == 2 and report.events.copied == 1 and report.tasks.copied == 3
    [refused] = report.conflicts
    assert spans[1] in refused and "its result holds a NUL" in refused
    async with await Store.open(to) as copied:
        assert {e.span_id for e in (await copied.list_executions()).executions} == {spans[0], spans[2]}


async def test_an_event_or_outcome_that_differs_under_the_same_id_is_a_conflict_not_a_skip(
    tmp_path: Path, postgres_url: str
) -> None:
    source = str(tmp_path / "source.db")
    async with await Store.open(source) as store:
        await store.log_event(EventRequest(event_id="ev-1", event_type="acme.deployed", task_id="d", ts=T0))
        run = await store.record(RecordRequest(task_id="r", status="success", started_at=T0))
    async with await Store.open(postgres_url) as target:
        await target.log_event(EventRequest(event_id="ev-1", event_type="acme.other", task_id="x", ts=T0))
    await copy_history(source, postgres_url)  # the run goes in; the event collides
    with sqlite3.connect(source) as conn:  # the source's run now says failed (edited by hand)
        conn.execute(
            "UPDATE executions SET status = 'failed', error_type = 'E', error_message = 'm' "
            "WHERE span_id = ?",
            (run.execution.span_id,),
        )
    report = await copy_history(source, postgres_url)
    said = " | ".join(report.conflicts)
    assert len(report.conflicts) == 2, said
    assert "event ev-1 is a acme.other of task x in the target" in said
    assert f"execution {run.execution.span_id} finished as success in the target, as failed here" in said


async def test_progress_is_reported_per_batch_for_each_table_in_order(
    tmp_path: Path, postgres_url: str
) -> None:
    source = str(tmp_path / "source.db")
    async with await Store.open(source) as store:
        await build_history(store)
    seen: list[tuple[str, int]] = []
    report: CopyReport = await copy_history(
        source, postgres_url, batch=4, progress=lambda t, n: seen.append((t, n))
    )
    assert [t for t, _ in seen] == sorted((t for t, _ in seen), key=TABLES.index)
    for table in TABLES:
        counts = [n for t, n in seen if t == table]
        assert counts == sorted(counts) and all(
            b - a <= 4 for a, b in zip([0, *counts], counts, strict=False)
        )
        assert counts[-1] == getattr(report, table).copied


@pytest.mark.parametrize(("batch", "to"), [(0, "other.db"), (10_001, "other.db"), (100, "source.db")])
async def test_a_bad_batch_or_copying_onto_itself_is_refused(tmp_path: Path, batch: int, to: str) -> None:
    with pytest.raises(InvalidInput):
        await copy_history(str(tmp_path / "source.db"), str(tmp_path / to), batch=batch)
