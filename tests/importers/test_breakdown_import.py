"""Importing seed 004's task-breakdown.json: executions per attempt (backfilled), the task's state
and notes, dependencies as causes; again without duplicates; again after the work moved on."""

from __future__ import annotations

import json
from pathlib import Path

from seed_files import breakdown

from store import Store
from store.importers import import_paths
from store.models import ExecutionFilter


def write(tmp_path: Path, doc: object, name: str = "task-breakdown.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


async def test_a_completed_task_becomes_a_backfilled_success_with_its_result_and_notes(
    store: Store, tmp_path: Path
) -> None:
    await import_paths(store, [write(tmp_path, breakdown())])
    (run,) = (await store.list_executions(ExecutionFilter(task_id="T1"))).executions
    assert (run.status, run.backfilled, run.result, run.duration_ms) == (
        "success", True, "Created auth module with JWT support", 35_000,
    )  # fmt: skip
    assert run.task_name == "Implement authentication module"
    assert run.attributes["breakdown"]["module"] == "auth-service"
    task = await store.task_status("T1")
    assert (task.state, task.attempts, task.result) == (
        "completed",
        1,
        "Created auth module with JWT support",
    )
    assert [n.note for n in task.notes] == ["Starting implementation", "All tests passing"]
    timeline = await store.timeline("T1")
    assert [e.event_type for e in timeline.events] == ["task_created", "breakdown.note", "breakdown.note"]
    assert timeline.events[0].data["priority"] == 1


async def test_attempts_become_a_retry_chain_in_one_trace_and_dependencies_become_causes(
    store: Store, tmp_path: Path
) -> None:
    await import_paths(store, [write(tmp_path, breakdown())])
    trace = await store.trace((await store.task_status("T2")).current_trace_id or "")
    first, second = trace.executions
    assert (first.attempt, first.status, first.error and first.error.type) == (1, "failed", "AttemptReset")
    assert (second.attempt, second.status, second.retry_of) == (2, "running", first.span_id)
    assert second.causes == ["T1"]
    assert (await store.task_status("T2")).state == "in_progress"


async def test_a_pending_task_gets_its_state_and_created_event_but_no_execution(
    store: Store, tmp_path: Path
) -> None:
    await import_paths(store, [write(tmp_path, breakdown())])
    assert (await store.task_status("T3")).state == "pending"
    assert (await store.list_executions(ExecutionFilter(task_id="T3"))).total == 0
    (created,) = (await store.timeline("T3")).events
    assert created.data["dependencies"] == ["T2"]


async def test_importing_the_file_again_creates_nothing(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, breakdown())
    first = await import_paths(store, [path])
    again = await import_paths(store, [path])
    assert first.created == {"executions": 3, "events": 5, "tasks": 3}
    assert (sum(again.created.values()), again.updated, again.duplicates) == (0, 0, 11)


async def test_importing_it_after_the_work_finished_closes_the_running_attempt(
    store: Store, tmp_path: Path
) -> None:
    await import_paths(store, [write(tmp_path, breakdown())])
    done = {"status": "failed", "completed_at": "2025-11-01T00:10:00", "result": "migration conflict"}
    later = await import_paths(store, [write(tmp_path, breakdown(T2=done), "later.json")])
    assert later.updated == 2  # the running attempt and the task row
    runs = (await store.list_executions(ExecutionFilter(task_id="T2"))).executions
    last = max(runs, key=lambda r: r.attempt)
    assert (last.status, last.error and last.error.message) == ("failed", "migration conflict")
    assert (await store.task_status("T2")).state == "failed"


async def test_a_later_snapshot_does_not_create_its_tasks_a_second_time(store: Store, tmp_path: Path) -> None:
    """task_created is dated by the file's generated_at, so a later snapshot's was another event:
    each task read as created twice, the second time after it had finished (a helper's probe)."""
    await import_paths(store, [write(tmp_path, breakdown())])
    later = breakdown(T2={"status": "completed", "completed_at": "2025-11-01T00:10:00", "result": "ok"})
    later["generated_at"] = "2025-11-01T09:00:00"
    path = write(tmp_path, later, "later.json")
    dry = await import_paths(store, [path], dry_run=True)
    done = await import_paths(store, [path])
    assert dry.created.get("events", 0) == done.created.get("events", 0) == 0
    for task_id in ("T1", "T2", "T3"):
        events = (await store.timeline(task_id)).events
        assert [e.event_type for e in events].count("task_created") == 1, task_id
    assert (await store.task_status("T2")).state == "completed"  # the rest of the snapshot went in


async def test_a_bad_task_entry_is_skipped_with_its_place_and_the_others_go_in(
    store: Store, tmp_path: Path
) -> None:
    doc = breakdown(T2={"status": "exploded"})
    doc["tasks"].append("not a task")
    path = write(tmp_path, doc)
    report = await import_paths(store, [path])
    assert [p.where for p in report.problems] == [f"{path}: tasks[1] (T2)", f"{path}: tasks[3]"]
    assert "status 'exploded'" in report.problems[0].message
    assert await store.known_ids("task", ["T1", "T2", "T3"]) == {"T1", "T3"}


async def test_a_task_prefix_namespaces_ids_and_dependencies(store: Store, tmp_path: Path) -> None:
    await import_paths(store, [write(tmp_path, breakdown())], prefix="jetbox/")
    (run,) = (await store.list_executions(ExecutionFilter(task_id="jetbox/T2", status="running"))).executions
    assert run.causes == ["jetbox/T1"]


async def test_an_invalid_json_file_is_reported_with_its_line(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "task-breakdown.json"
    path.write_text('{"tasks": [\n  {"id": "T1",,}\n]}', encoding="utf-8")
    report = await import_paths(store, [path])
    (problem,) = report.problems
    assert problem.where == f"{path}:2" and problem.message.startswith("not valid JSON")
