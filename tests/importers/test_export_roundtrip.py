"""`task-history export` writes JSONL that imports back into an empty store with nothing lost:
every execution, every event (anomalies and recorded_at included) and every task state."""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from server.cli import main
from store import Store
from store.export import export_history
from store.importers import import_paths
from store.models import (
    ErrorInput,
    EventRequest,
    FinishRequest,
    IOEffects,
    RecordRequest,
    Retrieval,
    StartRequest,
    Usage,
)

T0 = datetime(2025, 11, 4, 18, 29, 12, 123456, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def fill(store: Store) -> None:
    """A history with every kind of record the store keeps."""
    first = (await store.start(StartRequest(
        task_id="daily_reflection", task_name="Daily Self-Reflection", task_type="reflection",
        trigger="scheduled", scheduled_at=at(0), started_at=at(0.5), actor="scheduler",
        retrieval=Retrieval(memory_count=2, query="today", latency_ms=28), parents=["exp_1", "exp_2"],
        causes=["goal_9"], attributes={"model": "m-1", "depth": 3},
    ))).execution  # fmt: skip
    await store.finish(FinishRequest(
        span_id=first.span_id, status="failed", ended_at=at(1.25),
        error=ErrorInput(type="TimeoutError", message="llm timed out", stack="Traceback\nTimeoutError"),
    ))  # fmt: skip
    retry = await store.start(
        StartRequest(task_id="daily_reflection", retry_of=first.span_id, started_at=at(2))
    )
    await store.finish(FinishRequest(
        span_id=retry.execution.span_id, status="success", result="wrote the reflection", ended_at=at(3.5),
        io=IOEffects(files_written=["a.md"], tool_calls=["call-1"]),
        usage=Usage(input_tokens=10, output_tokens=5, cost=0.25),
    ))  # fmt: skip
    child = await store.start(
        StartRequest(task_id="daily_reflection", parent_span_id=retry.execution.span_id, started_at=at(2.5))
    )
    await store.finish(FinishRequest(span_id=child.execution.span_id, status="cancelled", ended_at=at(2.75)))
    await store.record(
        RecordRequest(task_id="ingest", status="partial", started_at=at(10), ended_at=at(11), result="half")
    )
    await store.start(StartRequest(task_id="long_job", started_at=at(20)))  # still running
    for event_type, seconds, data in [
        ("task_created", 30, {"priority": "high", "note": "from the planner"}),
        ("task_assigned", 31, {"assigned_to": "security-master"}),
        ("task_started", 32, {"task_name": "scan"}),
        ("worker_spawned", 33, {"worker_id": "w-1", "worker_type": "scan-worker"}),
        ("worker_progress", 34, {"worker_id": "w-1", "progress_percentage": 50}),
        ("worker_completed", 35, {"worker_id": "w-1"}),
        ("task_blocked", 36, {"reason": "waiting for creds"}),
        ("task_unblocked", 37, {}),
        ("handoff_created", 38, {"handoff_id": "h-1", "to_master": "dev-master"}),
        ("myorg.deploy_finished", 39, {"env": "prod"}),
        ("task_completed", 40, {"deliverables": ["report.json"]}),
        ("task_escalated", 35.5, {"reason": "late arrival"}),  # out of order: kept with an anomaly
    ]:
        await store.log_event(EventRequest(
            event_type=event_type, task_id="scan", ts=at(seconds), data=data, actor="security-master",
        ))  # fmt: skip


async def everything(store: Store) -> tuple[list[object], list[object], list[object]]:
    runs = (await store.scan_executions(limit=1000)).items
    events = (await store.scan_events(limit=1000)).items
    tasks = (await store.scan_tasks(limit=1000)).items
    return runs, events, tasks  # type: ignore[return-value]


async def test_an_export_imports_into_an_empty_store_with_nothing_lost(store: Store, tmp_path: Path) -> None:
    await fill(store)
    buffer = io.StringIO()
    counts = await export_history(store, lambda line: buffer.write(line + "\n"))
    path = tmp_path / "export.jsonl"
    path.write_text(buffer.getvalue(), encoding="utf-8")
    async with await Store.open(str(tmp_path / "empty.db")) as target:
        report = await import_paths(target, [path])
        copied = await everything(target)
    original = await everything(store)
    assert counts.as_dict() == {"executions": 7, "events": 12, "tasks": 4}
    assert report.created == {"executions": 7, "events": 12, "tasks": 4} and not report.problems
    assert copied == original  # every field of every execution, event and task state
    _runs, events, tasks = original
    assert any(e.anomaly for e in events)  # type: ignore[attr-defined]
    assert {t.task_id: t.last_event_at is not None for t in tasks} == {  # type: ignore[attr-defined]
        "daily_reflection": False,
        "ingest": False,
        "long_job": False,
        "scan": True,
    }


async def test_importing_an_export_twice_adds_nothing(store: Store, tmp_path: Path) -> None:
    await fill(store)
    path = tmp_path / "export.jsonl"
    with path.open("w", encoding="utf-8") as out:
        await export_history(store, lambda line: out.write(line + "\n"))
    async with await Store.open(str(tmp_path / "empty.db")) as target:
        await import_paths(target, [path])
        again = await import_paths(target, [path])
    assert (sum(again.created.values()), again.duplicates) == (0, 23)


async def test_a_window_exports_what_started_in_it_and_the_tasks_it_touches(store: Store) -> None:
    await fill(store)
    lines: list[str] = []
    counts = await export_history(store, lines.append, since=at(9), until=at(25))
    records = [json.loads(line) for line in lines]
    assert [r["record"] for r in records] == ["header", "execution", "execution", "task", "task", "footer"]
    assert {r["task"]["task_id"] for r in records if r["record"] == "task"} == {"ingest", "long_job"}
    assert counts.as_dict() == {"executions": 2, "events": 0, "tasks": 2}
    assert records[0]["since"] == "2025-11-04T18:29:21.123456Z"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from config import SETTINGS_SPEC

    for name in [spec.env_var for spec in SETTINGS_SPEC] + ["TASK_HISTORY_CONFIG"]:
        monkeypatch.delenv(name, raising=False)


def test_the_cli_round_trip_through_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], clean_env: None
) -> None:
    import asyncio

    source, target, path = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "out" / "history.jsonl"

    async def seed() -> None:
        async with await Store.open(str(source)) as store:
            await fill(store)

    asyncio.run(seed())
    assert main(["export", str(path), "--db", str(source)]) == 0
    assert "export: wrote 7 executions, 12 events, 4 tasks" in capsys.readouterr().err
    assert main(["import", str(path), "--db", str(target), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert sum(line.startswith("would create") for line in out.splitlines()) == 23 and not target.exists()
    assert main(["import", str(path), "--db", str(target)]) == 0
    assert "created 23 (12 events, 7 executions, 4 tasks)" in capsys.readouterr().out
    assert main(["export", "-", "--db", str(target)]) == 0
    again = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["record"] for line in again].count("execution") == 7
    assert again[1:] == path.read_text(encoding="utf-8").splitlines()[1:]


def test_the_cli_exits_1_when_records_were_skipped_and_2_for_a_missing_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], clean_env: None
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n", encoding="utf-8")
    assert main(["import", str(bad), "--db", str(tmp_path / "h.db")]) == 1
    assert f"skipped {bad}:1: not valid JSON" in capsys.readouterr().err
    assert main(["import", str(tmp_path / "nope"), "--db", str(tmp_path / "h.db")]) == 2


async def test_a_record_whose_key_or_event_id_names_another_in_the_target_is_skipped_not_dropped(
    store: Store, tmp_path: Path
) -> None:
    """Counted as "already present" while the file's record never went in: a merge of two hosts'
    histories lost runs and events without a word (a helper's probe)."""
    done = await store.record(
        RecordRequest(task_id="deploy", status="success", started_at=T0, idempotency_key="deploy-1")
    )
    await store.log_event(
        EventRequest(event_id="ev-1", event_type="acme.deployed", task_id="deploy", ts=T0, data={"v": 1})
    )
    path = tmp_path / "export.jsonl"
    with path.open("w", encoding="utf-8") as out:
        await export_history(store, lambda line: out.write(line + "\n"))
    async with await Store.open(str(tmp_path / "target.db")) as target:
        other = await target.start(StartRequest(task_id="deploy", idempotency_key="deploy-1"))
        await target.log_event(
            EventRequest(event_id="ev-1", event_type="acme.other", task_id="other", ts=T0, data={"v": 2})
        )
        report = await import_paths(target, [path])
        said = " ".join(p.message for p in report.problems)
        assert report.skipped == 2, report.summary()
        assert f"'deploy-1' already names execution {other.execution.span_id}" in said
        assert done.execution.span_id in said and "ev-1 is already recorded as a acme.other" in said
        kept = (await target.get(other.execution.span_id)).execution
        assert kept.status == "running"  # the stored records stand
        again = await import_paths(target, [path])
        assert again.skipped == 2  # and say so every time, not "already present"


def _start_a_run_from_another_writer(path: str, task_id: str) -> None:
    """Another writer (its own Store and thread, as another process would be) starts a run of
    `task_id`: the task row's current_span_id moves to a run that started after the export began."""

    async def write() -> None:
        async with await Store.open(path) as other:
            await other.log_event(EventRequest(event_type="task_started", task_id=task_id))

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, write()).result(timeout=60)


async def test_an_export_taken_while_another_writer_writes_is_one_point_in_time(tmp_path: Path) -> None:
    path = str(tmp_path / "live.db")
    lines: list[str] = []
    async with await Store.open(path) as store:
        await fill(store)

        def write(line: str) -> None:
            lines.append(line)
            if len(lines) == 2:  # the first execution is out; events and task rows are still to come
                _start_a_run_from_another_writer(path, "daily_reflection")

        counts = await export_history(store, write)
        now_running = (await store.task_status("daily_reflection")).current_span_id
    records = [json.loads(line) for line in lines]
    spans = {r["document"]["content"]["structured"]["span_id"] for r in records if r["record"] == "execution"}
    tasks = [r["task"] for r in records if r["record"] == "task"]
    events = [r["event"] for r in records if r["record"] == "event"]
    assert len(spans) == counts.executions and len(tasks) == counts.tasks and len(events) == counts.events
    assert now_running is not None and now_running not in spans  # the other writer's run came after
    named = [t["current_span_id"] for t in tasks if t["current_span_id"]]
    assert all(span in spans for span in named), "a task state names a run the file lacks"
    assert all(e["span_id"] in spans for e in events if e["span_id"]), "an event names a run not in it"
