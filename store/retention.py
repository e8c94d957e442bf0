"""Retention: `task-history prune` removes history older than the settings allow, optionally after
appending it to dated JSONL archives (`DIR/lineage-YYYY-MM-DD.jsonl`, in the export record format,
so `task-history import DIR` brings it back).

What goes, in three passes of batches, each batch deleted in one transaction:

1. whole traces: a trace goes when nothing in it is running and each of its executions ended before
   the cutoff of its status (successful and cancelled: `retain_success_days`; failed and partial:
   `retain_failed_days`, longer by default). Every event that points at the trace or one of its
   executions goes with it, in the same transaction, so no event ever points at nothing; a trace
   that changed between reading and deleting is left for the next run;
2. events older than `retain_events_days`, except those of anything still running;
3. task rows with nothing left to summarize (no execution, no event), untouched since the cutoff.

A running execution is never touched, nor anything in its trace.

A dry run reads the same batches and deletes nothing, so it must not count twice what the real
prune would already have removed: an old event of a pruned trace comes back in the events pass,
and a task row emptied over several batches is never empty in any one of them. `_DryRun` keeps
what was counted, so a dry run counts exactly what the real prune removes (given no concurrent
writes: a trace skipped because it changed is only known when deleting)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from store.export import ExportItem, dumps, header, record_of
from store.models import Execution, LifecycleEvent
from store.records import PruneBatch, PruneCounts, Retention, StoredTask
from store.store import Store
from store.timeutil import now_utc

BATCH = 500


def retention_of(
    success_days: int, failed_days: int, events_days: int, *, now: datetime | None = None
) -> Retention:
    """Cutoffs from retention periods in days; 0 keeps that kind forever."""
    now = now or now_utc()

    def cutoff(days: int) -> datetime | None:
        return now - timedelta(days=days) if days > 0 else None

    return Retention(cutoff(success_days), cutoff(failed_days), cutoff(events_days))


@dataclass
class PruneReport:
    dry_run: bool
    counts: PruneCounts = field(default_factory=PruneCounts)
    archives: set[Path] = field(default_factory=set)

    def summary(self) -> str:
        c = self.counts
        verb = "would remove" if self.dry_run else "removed"
        text = f"{verb} {c.executions} executions, {c.events} events, {c.tasks} task rows"
        if c.skipped_traces:
            text += f"; {c.skipped_traces} traces changed while pruning and were kept for the next run"
        if self.archives:
            text += f"; archived to {len(self.archives)} file(s) in {next(iter(self.archives)).parent}"
        return text


async def prune(
    store: Store,
    retention: Retention,
    *,
    dry_run: bool = False,
    archive: Path | None = None,
    batch: int = BATCH,
) -> PruneReport:
    report = PruneReport(dry_run)
    step = _Step(store, report, archive, _DryRun() if dry_run else None)
    after_trace: str | None = ""
    while after_trace is not None:
        found, after_trace = await store.prune_traces(retention, after=after_trace, limit=batch)
        await step.apply(found)
    if retention.events_before is not None:
        after_event: int | None = 0
        while after_event is not None:
            found, after_event = await store.prune_events(
                retention.events_before, after=after_event, limit=batch
            )
            await step.apply(found)
    horizon = max(
        (c for c in (retention.success_before, retention.failed_before, retention.events_before) if c),
        default=None,
    )
    if step.dry is not None:
        report.counts.tasks += await step.dry.emptied_tasks(store)
    if horizon is not None:
        after_task: str | None = ""
        while after_task is not None:
            found, after_task = await store.prune_orphan_tasks(horizon, after=after_task, limit=batch)
            await step.apply(found)
    return report


@dataclass
class _DryRun:
    """What a dry run has counted so far: each execution and event once, and per task how many of
    its executions and events would go (its row goes when that is all it has, as in the real
    prune, where the batch that removes a task's last records removes its row too)."""

    spans: set[str] = field(default_factory=set)
    events: set[str] = field(default_factory=set)
    per_task: dict[str, list[int]] = field(default_factory=dict)

    def count(self, batch: PruneBatch) -> PruneCounts:
        counts = PruneCounts()
        for execution in batch.executions:
            if execution.span_id not in self.spans:
                self.spans.add(execution.span_id)
                self.per_task.setdefault(execution.task_id, [0, 0])[0] += 1
                counts.executions += 1
        for event in batch.events:
            if event.event_id not in self.events:
                self.events.add(event.event_id)
                self.per_task.setdefault(event.task_id, [0, 0])[1] += 1
                counts.events += 1
        # Task rows that are already empty (the orphan pass) have nothing counted above.
        counts.tasks = sum(1 for task in batch.tasks if task.task_id not in self.per_task)
        return counts

    async def emptied_tasks(self, store: Store) -> int:
        """Task rows that the counted executions and events would leave with nothing."""
        emptied = 0
        for task_id, (runs, events) in sorted(self.per_task.items()):
            timeline = await store.timeline(task_id, limit=1)
            if timeline.task is not None and (timeline.executions_total, timeline.events_total) == (
                runs,
                events,
            ):
                emptied += 1
        return emptied


@dataclass
class _Step:
    store: Store
    report: PruneReport
    archive: Path | None
    dry: _DryRun | None = None

    async def apply(self, batch: PruneBatch) -> None:
        if batch.empty:
            return
        if self.dry is not None:
            self.report.counts.add(self.dry.count(batch))
            return
        if self.archive is not None:
            self.report.archives |= write_archive(
                self.archive, [*batch.executions, *batch.events, *batch.tasks]
            )
        self.report.counts.add(await self.store.prune(batch))


def day_of(item: ExportItem) -> str:
    if isinstance(item, Execution):
        moment = item.started_at
    elif isinstance(item, LifecycleEvent):
        moment = item.ts
    else:
        assert isinstance(item, StoredTask)
        moment = item.updated_at
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


def write_archive(folder: Path, items: Iterable[ExportItem]) -> set[Path]:
    """Append each item to the archive file of its day, durably (fsync) before anything is deleted."""
    folder.mkdir(parents=True, exist_ok=True)
    by_day: dict[str, list[ExportItem]] = {}
    for item in items:
        by_day.setdefault(day_of(item), []).append(item)
    written = set()
    for day, day_items in sorted(by_day.items()):
        path = folder / f"lineage-{day}.jsonl"
        new = not path.exists() or path.stat().st_size == 0
        with path.open("a", encoding="utf-8") as out:
            if new:
                out.write(dumps(header(None, None) | {"archive_of": day}) + "\n")
            out.writelines(dumps(record_of(item)) + "\n" for item in day_items)
            out.flush()
            os.fsync(out.fileno())
        written.add(path)
    return written
