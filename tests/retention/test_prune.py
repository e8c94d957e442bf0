"""Retention: prune removes whole traces past their status's retention together with every event
that points at them, old events on their own, and emptied task rows; never anything running;
archives what it removes so that importing the archive brings it back."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from config import Settings
from server.cli import main
from store import Store
from store.importers import import_paths
from store.models import ErrorInput, EventRequest, Execution, LifecycleEvent, RecordRequest, StartRequest
from store.records import StoredTask
from store.retention import prune, retention_of

NOW = datetime(2026, 1, 1, tzinfo=UTC)
RETENTION = retention_of(90, 365, 365, now=NOW)


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


@dataclass
class Scene:
    spans: dict[str, str]


async def record(store: Store, task: str, status: str, days: float, **extra: object) -> Execution:
    error = ErrorInput(type="TimeoutError", message="slow") if status == "failed" else None
    req = RecordRequest(
        task_id=task, status=status, started_at=ago(days), ended_at=ago(days - 0.01), error=error, **extra
    )  # type: ignore[arg-type]
    return (await store.record(req)).execution


async def note(store: Store, execution: Execution, days: float) -> None:
    await store.log_event(EventRequest(
        event_type="myorg.note", task_id=execution.task_id, span_id=execution.span_id,
        trace_id=execution.trace_id, ts=ago(days), data={"note": "seen"},
    ))  # fmt: skip


async def scene(store: Store) -> Scene:
    spans: dict[str, str] = {}
    old_ok = await record(store, "daily", "success", 200)
    await note(store, old_ok, 200)
    spans["old_ok"] = old_ok.span_id
    spans["recent_ok"] = (await record(store, "daily", "success", 10)).span_id
    spans["old_fail"] = (await record(store, "ingest", "failed", 200)).span_id
    spans["ancient_fail"] = (await record(store, "ingest", "failed", 400)).span_id
    first = await record(store, "retried", "failed", 200)
    retry = await record(store, "retried", "success", 199.9, retry_of=first.span_id)
    spans["kept_chain_1"], spans["kept_chain_2"] = (
        first.span_id,
        retry.span_id,
    )  # the failure is within 365 days
    running = (await store.start(StartRequest(task_id="forever", started_at=ago(300)))).execution
    await note(store, running, 299)
    spans["running"] = running.span_id
    sibling = await record(store, "forever", "success", 300, trace_id=running.trace_id)
    spans["running_sibling"] = sibling.span_id  # same trace as a running execution: kept
    await store.log_event(EventRequest(event_type="task_created", task_id="abandoned", ts=ago(400)))
    return Scene(spans)


async def everything(store: Store) -> tuple[list[Execution], list[LifecycleEvent], list[StoredTask]]:
    runs = (await store.scan_executions(limit=1000)).items
    events = (await store.scan_events(limit=1000)).items
    tasks = (await store.scan_tasks(limit=1000)).items
    return runs, events, tasks


async def test_prune_removes_what_retention_lets_go_and_nothing_else(store: Store) -> None:
    s = await scene(store)
    report = await prune(store, RETENTION)
    runs, events, tasks = await everything(store)
    kept = {e.span_id for e in runs}
    assert kept == {s.spans[k] for k in (
        "recent_ok", "old_fail", "kept_chain_1", "kept_chain_2", "running", "running_sibling",
    )}  # fmt: skip
    assert (report.counts.executions, report.counts.skipped_traces) == (2, 0)
    assert all(e.span_id is None or e.span_id in kept for e in events)  # no event points at nothing
    assert {e.event_type for e in events} >= {"myorg.note"} and "abandoned" not in {e.task_id for e in events}
    assert "abandoned" not in {t.task_id for t in tasks}
    assert (await store.get(s.spans["running"])).events  # a running execution keeps its events


async def test_a_running_execution_and_its_trace_are_never_touched(store: Store) -> None:
    s = await scene(store)
    await prune(store, retention_of(1, 1, 1, now=NOW))  # everything finished is past retention
    runs, events, _ = await everything(store)
    assert {e.span_id for e in runs} == {s.spans["running"], s.spans["running_sibling"]}
    assert [e.span_id for e in events] == [s.spans["running"]]


async def test_zero_days_keeps_that_kind_forever(store: Store) -> None:
    await scene(store)
    before = await everything(store)
    report = await prune(store, retention_of(0, 0, 0, now=NOW))
    assert report.counts.executions == 0 and await everything(store) == before


async def test_a_dry_run_counts_and_removes_nothing(store: Store) -> None:
    await scene(store)
    before = await everything(store)
    report = await prune(store, RETENTION, dry_run=True)
    assert (report.counts.executions, report.counts.events) == (2, 2)
    assert "would remove 2 executions" in report.summary()
    assert await everything(store) == before


@pytest.mark.parametrize("batch", [1, 500])
async def test_a_dry_run_counts_exactly_what_the_real_prune_then_removes(store: Store, batch: int) -> None:
    """Old events of pruned traces come back in the events pass; a task's row empties over several
    batches (batch=1: one trace each). The dry run must count each record once, like the delete."""
    await scene(store)
    weekly = [await record(store, "weekly", "success", days) for days in (300, 250)]
    for run in weekly:
        await note(store, run, 240)  # old events of pruned traces: counted by both passes if naive
    await store.log_event(EventRequest(event_type="myorg.ping", task_id="weekly", ts=ago(230)))
    retention = retention_of(90, 365, 100, now=NOW)
    before = await everything(store)
    dry = await prune(store, retention, dry_run=True, batch=batch)
    assert await everything(store) == before
    real = await prune(store, retention, batch=batch)
    counted = (dry.counts.executions, dry.counts.events, dry.counts.tasks)
    removed = (real.counts.executions, real.counts.events, real.counts.tasks)
    assert real.counts.skipped_traces == 0
    assert counted == removed
    after = await everything(store)
    gone = tuple(len(b) - len(a) for b, a in zip(before, after, strict=True))
    assert removed == gone and removed[0] == 4  # old_ok, ancient_fail and the two weekly runs
    assert "weekly" not in {t.task_id for t in after[2]}  # emptied over two traces and the events pass
    assert dry.summary() == real.summary().replace("removed", "would remove")


async def test_a_trace_that_changed_after_it_was_read_is_kept_for_the_next_run(store: Store) -> None:
    s = await scene(store)
    batch, _ = await store.prune_traces(RETENTION)
    old_ok = (await store.get(s.spans["old_ok"])).execution
    await note(store, old_ok, 1)  # a new event for it arrives between reading and deleting
    counts = await store.prune(batch)
    assert counts.skipped_traces == 1 and (await store.get(s.spans["old_ok"])).events
    assert (await store.known_ids("span", [s.spans["ancient_fail"]])) == set()


async def test_the_archive_imports_back_what_was_pruned(store: Store, tmp_path: Path) -> None:
    await scene(store)
    before = await everything(store)
    report = await prune(store, RETENTION, archive=tmp_path / "archive")
    names = sorted(p.name for p in report.archives)
    assert names and all(n.startswith("lineage-") and n.endswith(".jsonl") for n in names)
    first = (tmp_path / "archive" / names[0]).read_text(encoding="utf-8").splitlines()
    assert json.loads(first[0])["record"] == "header"
    restored = await import_paths(store, [tmp_path / "archive"])
    assert not restored.problems
    after = await everything(store)
    assert sorted(e.span_id for e in after[0]) == sorted(e.span_id for e in before[0])
    assert sorted(e.event_id for e in after[1]) == sorted(e.event_id for e in before[1])
    assert sorted(t.task_id for t in after[2]) == sorted(t.task_id for t in before[2])


def test_failures_are_kept_longer_than_successes_by_default() -> None:
    defaults = Settings()
    assert defaults.retain_failed_days > defaults.retain_success_days > 0 and defaults.retain_events_days > 0


def test_the_cli_prunes_with_the_retention_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from config import SETTINGS_SPEC

    for name in [spec.env_var for spec in SETTINGS_SPEC] + ["TASK_HISTORY_CONFIG"]:
        monkeypatch.delenv(name, raising=False)
    db = tmp_path / "h.db"

    async def seed() -> None:
        async with await Store.open(str(db)) as store:
            await record(store, "old", "success", 30)  # 30 days before NOW, and so before today too
            just_now = (NOW - datetime.now(UTC)) / timedelta(days=1)  # a negative number of days
            await record(store, "new", "success", just_now)  # now: within any retention (no future starts)

    asyncio.run(seed())
    assert main(["prune", "--db", str(db), "--retain-success-days", "1", "--dry-run"]) == 0
    assert "would remove 1 executions" in capsys.readouterr().out
    archive = tmp_path / "archive"
    assert main(["prune", "--db", str(db), "--retain-success-days", "1", "--archive", str(archive)]) == 0
    assert "removed 1 executions" in capsys.readouterr().out
    day = ago(30).strftime("%Y-%m-%d")
    archived = (archive / f"lineage-{day}.jsonl").read_text(encoding="utf-8")
    assert '"record":"execution"' in archived  # the execution under its day; its task row under the row's
