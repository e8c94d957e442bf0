"""Importing seed 000 lineage logs: events replayed through log_event, daily archives in date
order, content-derived event ids so nothing is imported twice, bad lines reported and skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from seed_files import DAY_ONE, DAY_TWO, TASK, lineage, write_jsonl, write_lineage_folder

from store import Store
from store.importers import Progress, import_paths
from store.importers.lineage import lineage_event
from store.models import ExecutionFilter


def test_a_lineage_line_maps_actor_time_data_and_keeps_the_rest_under_lineage() -> None:
    event = lineage_event(DAY_TWO[0])
    assert (event.event_type, event.task_id, event.actor) == ("worker_failed", TASK, "worker-scan-001")
    assert event.ts is not None and event.ts.isoformat() == "2025-11-28T09:00:00+00:00"
    assert event.data["error"] == {
        "type": "TimeoutError", "message": "scanner timed out",
        "stack": "Traceback...\nTimeoutError: scanner timed out",
    }  # fmt: skip
    assert event.data["lineage"]["lineage_id"] == "lineage-1732731600005"
    assert event.data["lineage"]["actor_type"] == "master"
    assert event.backfilled is True


def test_the_event_id_is_the_same_for_the_same_line_and_differs_for_another() -> None:
    assert lineage_event(DAY_ONE[0]).event_id == lineage_event(json.loads(json.dumps(DAY_ONE[0]))).event_id
    assert lineage_event(DAY_ONE[0]).event_id != lineage_event(DAY_ONE[1]).event_id


def test_naive_timestamps_are_read_as_utc_and_a_string_event_data_is_parsed() -> None:
    line = {**DAY_ONE[0], "timestamp": "2025-11-27T12:00:00", "event_data": '{"priority": "low"}'}
    event = lineage_event(line)
    assert event.ts is not None and event.ts.utcoffset() is not None and event.ts.hour == 12
    assert event.data["priority"] == "low"


async def test_a_folder_of_daily_archives_replays_the_task_story(store: Store, tmp_path: Path) -> None:
    report = await import_paths(store, [write_lineage_folder(tmp_path / "lineage")])
    assert (report.created["events"], report.duplicates, report.skipped) == (6, 2, 0)
    task = await store.task_status(TASK)
    assert (task.state, task.assigned_to, task.attempts) == ("completed", "security-master", 1)
    runs = (await store.list_executions(ExecutionFilter(task_id=TASK))).executions
    by_actor = {run.actor: run for run in runs}
    assert by_actor["security-master"].status == "partial"
    worker = by_actor["worker-scan-001"]
    assert (worker.status, worker.error and worker.error.type) == ("failed", "TimeoutError")
    assert worker.parent_span_id == by_actor["security-master"].span_id
    assert all(run.backfilled for run in runs)


async def test_importing_the_same_logs_again_creates_nothing(store: Store, tmp_path: Path) -> None:
    folder = write_lineage_folder(tmp_path / "lineage")
    await import_paths(store, [folder])
    before = await store.timeline(TASK)
    again = await import_paths(store, [folder])
    assert (sum(again.created.values()), again.duplicates) == (0, 8)
    after = await store.timeline(TASK)
    assert (after.events, after.executions, after.task) == (before.events, before.executions, before.task)


async def test_a_malformed_line_is_reported_with_its_place_and_the_rest_goes_in(
    store: Store, tmp_path: Path
) -> None:
    bad_worker = lineage("worker_failed", "2025-11-27T12:00:20Z", "x", 9)  # no worker_id
    path = write_jsonl(tmp_path / "task-lineage.jsonl", [*DAY_ONE[:2], bad_worker], extra_lines=["{not json"])
    seen = []
    report = await import_paths(store, [path], on_problem=seen.append)
    assert report.created["events"] == 2
    assert [(p.where, p.message.split(":")[0]) for p in seen] == [
        (f"{path}:3", "data.worker_id"),
        (f"{path}:4", "not valid JSON"),
    ]


@pytest.mark.parametrize("ending", ["\n", "\r\n"])
async def test_a_malformed_line_names_the_column_where_the_json_breaks(
    store: Store, tmp_path: Path, ending: str
) -> None:
    cut = '{"event_type": "task_created", "task_id": "t-1", "timestamp": "2025-11-27T12:00:00Z",'
    wrong = '{"event_type": "task_created", "task_id": "t-2", "timestamp" "2025-11-27T12:00:00Z"}'
    path = tmp_path / "task-lineage.jsonl"
    path.write_bytes((ending.join([json.dumps(DAY_ONE[0]), cut, wrong]) + ending).encode())
    report = await import_paths(store, [path])
    assert [(p.where, p.message) for p in report.problems] == [  # the cut line: at its end, column 86
        (f"{path}:2", "not valid JSON: Expecting property name enclosed in double quotes (column 86)"),
        (f"{path}:3", "not valid JSON: Expecting ':' delimiter (column 62)"),
    ]
    assert report.created["events"] == 1


async def test_a_line_without_a_timestamp_or_with_a_bad_one_is_skipped(store: Store, tmp_path: Path) -> None:
    no_time = {k: v for k, v in DAY_ONE[0].items() if k != "timestamp"}
    bad_time = {**DAY_ONE[1], "timestamp": "yesterday"}
    report = await import_paths(store, [write_jsonl(tmp_path / "l.jsonl", [no_time, bad_time, DAY_ONE[2]])])
    assert [p.message for p in report.problems] == [
        "the line has no timestamp",
        "timestamp 'yesterday' is not an ISO 8601 time",
    ]
    assert report.created["events"] == 1


async def test_a_dry_run_lists_what_would_be_created_and_writes_nothing(store: Store, tmp_path: Path) -> None:
    folder = write_lineage_folder(tmp_path / "lineage")
    listed: list[str] = []
    report = await import_paths(store, [folder], dry_run=True, on_item=listed.append)
    assert (report.created["events"], report.duplicates) == (6, 2)
    assert (report.created["executions"], report.created["tasks"]) == (2, 1)  # master + worker, the row
    assert len(listed) == 9 and listed[0].startswith(
        "would create event task_created of task-security-scan-001"
    )
    assert listed[1].startswith(f"would create task {TASK} (its first event)")
    opened = [line.split("  (")[0] for line in listed if "(opened by" in line]
    assert opened == [
        f"would create execution of {TASK} (opened by task_started)",
        f"would create execution of {TASK} worker worker-scan-001 (opened by worker_spawned)",
    ]
    assert (await store.list_executions()).total == 0 and not await store.known_ids("task", [TASK])


def _more_lines() -> list[dict[str, object]]:
    """A second task whose worker is spawned and then started (one execution), that fails and is
    started again (a second execution), and a custom event that opens nothing."""
    other = "task-docs-002"
    lines = [
        lineage("task_created", "2025-11-29T08:00:00Z", "u", 20),
        lineage("task_started", "2025-11-29T08:00:01Z", "docs-master", 21),
        lineage("worker_spawned", "2025-11-29T08:00:02Z", "docs-master", 22, worker_id="w-1"),
        lineage("worker_started", "2025-11-29T08:00:03Z", "w-1", 23, worker_id="w-1"),
        lineage("myorg.checkpoint", "2025-11-29T08:00:04Z", "w-1", 24),
        lineage("worker_completed", "2025-11-29T08:00:05Z", "w-1", 25, worker_id="w-1"),
        lineage("task_failed", "2025-11-29T08:00:06Z", "docs-master", 26, reason="lint failed"),
        lineage("task_started", "2025-11-29T08:10:00Z", "docs-master", 27),
        lineage("task_completed", "2025-11-29T08:20:00Z", "docs-master", 28),
    ]
    return [{**line, "task_id": other} for line in lines]


async def _made(store: Store) -> tuple[int, int, int]:
    runs = (await store.scan_executions(limit=1000)).items
    events = (await store.scan_events(limit=1000)).items
    tasks = (await store.scan_tasks(limit=1000)).items
    return len(events), len(runs), len(tasks)


@pytest.mark.parametrize("first", ["nothing", "day one"])
async def test_the_dry_run_counts_the_executions_and_task_rows_the_events_open_like_the_import(
    store: Store, tmp_path: Path, first: str
) -> None:
    folder = write_lineage_folder(tmp_path / "lineage")
    write_jsonl(folder / "lineage-2025-11-29.jsonl", _more_lines())
    if first == "day one":  # the store already holds a running master and worker of TASK
        await import_paths(store, [folder / "lineage-2025-11-27.jsonl"])
    before = await _made(store)
    dry = await import_paths(store, [folder], dry_run=True)
    assert await _made(store) == before
    real = await import_paths(store, [folder])
    after = await _made(store)
    made = {"events": after[0] - before[0], "executions": after[1] - before[1], "tasks": after[2] - before[2]}
    assert dict(dry.created) == dict(real.created) == made
    expected = {"events": 15, "executions": 5, "tasks": 2} if first == "nothing" else {
        "events": 11, "executions": 3, "tasks": 1,
    }  # fmt: skip
    assert made == expected
    assert real.summary().startswith(
        f"4 files: created {sum(made.values())} ({made['events']} events, {made['executions']} executions, "
        f"{made['tasks']} tasks), updated 0"
    )
    assert dry.summary().startswith(f"4 files: would create {sum(made.values())} (")


async def test_a_dry_run_after_the_import_says_everything_is_already_there(
    store: Store, tmp_path: Path
) -> None:
    folder = write_lineage_folder(tmp_path / "lineage")
    await import_paths(store, [folder])
    report = await import_paths(store, [folder], dry_run=True)
    assert (sum(report.created.values()), report.duplicates) == (0, 8)


@pytest.mark.parametrize("interval", [0.0])
async def test_progress_lines_go_to_the_given_stream(store: Store, tmp_path: Path, interval: float) -> None:
    import io

    stream = io.StringIO()
    lines = [
        lineage("task_created", f"2025-11-27T12:{i // 60:02d}:{i % 60:02d}Z", "u", i) for i in range(600)
    ]
    await import_paths(
        store, [write_jsonl(tmp_path / "big.jsonl", lines)], progress=Progress(stream, interval)
    )
    shown = stream.getvalue().splitlines()
    assert len(shown) >= 2 and shown[-1].startswith("import: 600 records read (100% of")
