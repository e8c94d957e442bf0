"""Running an import: read the paths (store.importers.sources), write each record through the
`Store` in batches, count what happened, and say where every skipped record was.

Writes of a batch are submitted together, in file order: the store's single writer runs them in
that order inside one transaction (each in its own savepoint), so events apply in sequence and a
record the store refuses is reported and skipped without disturbing the others. A dry run reads
and checks everything, asks the store which records it already has, and writes nothing.

A replayed lineage event can do more than add itself: `task_started` and `worker_spawned` open
executions, and a task's first event makes its task row. Both runs count those too (the real one
from the store's answers, the dry run by following each task's running executions from what the
store holds), so `would create` and `created` name the same records."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TextIO

from store import lifecycle, rules
from store.errors import Conflict, StoreError
from store.importers.items import Item, Problem
from store.importers.sources import Format, files_of, read_all, total_bytes
from store.models import EventRequest, Execution, ExecutionFilter, FinishRequest, LifecycleEvent
from store.records import StoredTask
from store.store import Store

BATCH = 256
_NOUNS = {
    "event": "events", "raw_event": "events", "first_event": "events",
    "execution": "executions", "task": "tasks",
}  # fmt: skip


@dataclass
class ImportReport:
    dry_run: bool = False
    files: int = 0
    created: Counter[str] = field(default_factory=Counter)
    updated: int = 0
    duplicates: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return len(self.problems)

    def summary(self) -> str:
        made = sum(self.created.values())
        detail = ", ".join(f"{n} {kind}" for kind, n in sorted(self.created.items()))
        verb = "would create" if self.dry_run else "created"
        text = f"{verb} {made}" + (f" ({detail})" if detail else "")
        if not self.dry_run:
            text += f", updated {self.updated}"
        return (
            f"{self.files} file{'s' * (self.files != 1)}: {text}, "
            f"{self.duplicates} already present (duplicates), {self.skipped} skipped"
        )


class Progress:
    """A line on `stream` at most every `interval` seconds while an import runs."""

    def __init__(self, stream: TextIO, interval: float = 1.0) -> None:
        self._stream, self._interval = stream, interval
        self.total = 1  # bytes to read, set when the import knows its files
        self._last = time.monotonic()
        self.records = 0
        self.shown = False

    def update(self, records: int, position: int) -> None:
        self.records += records
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self.shown = True
            percent = min(100, 100 * position // max(self.total, 1))
            print(
                f"import: {self.records:,} records read ({percent}% of {self.total:,} bytes)",
                file=self._stream,
            )


async def import_paths(
    store: Store | None,
    paths: Sequence[Path],
    *,
    fmt: Format | None = None,
    dry_run: bool = False,
    prefix: str = "",
    policy: rules.Policy | None = None,
    on_problem: Callable[[Problem], None] | None = None,
    on_item: Callable[[str], None] | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import every record under `paths`. `store` may be None for a dry run on a database that
    does not exist yet (then everything would be created)."""
    if store is None and not dry_run:
        raise ValueError("a store is needed to import (only a dry run can go without one)")
    policy = policy or (store.policy if store else rules.Policy())
    files = [f for p in paths for f in files_of(p)]
    report = ImportReport(dry_run=dry_run, files=len(files))
    if progress is not None:
        progress.total = total_bytes(files)
    run = _DryRun(store, report, on_item) if dry_run else _Writer(store, report)  # type: ignore[arg-type]
    batch: list[Item | Problem] = []
    for found, position in read_all(files, fmt, policy, prefix):
        batch.append(found)
        if len(batch) >= BATCH:
            await _flush(run, batch, report, on_problem, progress, position)
    await _flush(run, batch, report, on_problem, progress, total_bytes(files))
    return report


async def _flush(
    run: _DryRun | _Writer, batch: list[Item | Problem], report: ImportReport,
    on_problem: Callable[[Problem], None] | None, progress: Progress | None, position: int,
) -> None:  # fmt: skip
    """Write the batch's items, then report its problems in file order."""
    refused = iter(await run.batch([found for found in batch if isinstance(found, Item)]))
    for found in batch:
        problem = found if isinstance(found, Problem) else next(refused)
        if problem is not None:
            _problem(report, problem, on_problem)
    if progress is not None:
        progress.update(len(batch), position)
    batch.clear()


def _problem(report: ImportReport, problem: Problem, on_problem: Callable[[Problem], None] | None) -> None:
    report.problems.append(problem)
    if on_problem is not None:
        on_problem(problem)


class _Writer:
    def __init__(self, store: Store, report: ImportReport) -> None:
        self._store, self._report = store, report
        self._tasks: set[str] = set()  # task ids of replayed events whose row is known to exist
        self._before: set[str] = set()  # tasks of this batch's first_events whose rows were there
        self._opened: dict[int, bool] = {}  # id(item) -> its replayed event opened an execution

    async def batch(self, items: list[Item]) -> list[Problem | None]:
        """Write the items in order; one entry per item: the problem that kept it out, or None."""
        event_tasks = {i.payload.task_id for i in items if isinstance(i.payload, EventRequest)} - self._tasks
        first_tasks = {_task_of(i) for i in items if i.kind == "first_event"}
        asked = sorted(event_tasks | first_tasks)
        existing = await self._store.known_ids("task", asked) if asked else set()
        self._tasks |= existing
        self._before = existing & first_tasks  # their rows were there before this batch wrote any
        self._opened.clear()
        outcomes = await asyncio.gather(*(self._write(item) for item in items), return_exceptions=True)
        problems: list[Problem | None] = []
        for item, outcome in zip(items, outcomes, strict=True):
            refused = isinstance(outcome, StoreError)
            problems.append(Problem(item.where, _sentence(outcome)) if refused else None)  # type: ignore[arg-type]
            if isinstance(outcome, BaseException) and not isinstance(outcome, StoreError):
                raise outcome
            if isinstance(item.payload, StoredTask) and outcome in ("created", "updated", "duplicate"):
                self._tasks.add(item.payload.task_id)  # its row exists: a later event does not make it
            if outcome == "created":
                self._report.created[_NOUNS[item.kind]] += 1
                if isinstance(item.payload, EventRequest):
                    self._replayed(item.payload, opened=self._opened.get(id(item), False))
            elif outcome == "updated":
                self._report.updated += 1
            elif outcome in ("duplicate", "unchanged"):
                self._report.duplicates += 1
        return problems

    def _replayed(self, event: EventRequest, *, opened: bool) -> None:
        """What a stored event made besides itself: an execution it opened, its task's first row."""
        if opened:
            self._report.created["executions"] += 1
        if event.task_id not in self._tasks:
            self._tasks.add(event.task_id)
            self._report.created["tasks"] += 1

    async def _write(self, item: Item) -> str:
        p = item.payload
        if isinstance(p, EventRequest):
            logged = await self._store.log_event(p)
            self._opened[id(item)] = logged.opened_span_id is not None
            return "duplicate" if logged.duplicate else "created"
        if isinstance(p, LifecycleEvent):
            if item.kind == "first_event" and p.task_id in self._before:
                return "duplicate"  # the task was created before: this file's creation is the same one
            return "created" if await self._store.import_event(p) else "duplicate"
        if isinstance(p, StoredTask):
            outcome = await self._store.import_task(p)
            return "duplicate" if outcome == "unchanged" else outcome
        assert isinstance(p, Execution)
        return await self._execution(p)

    async def _execution(self, e: Execution) -> str:
        stored = await self._store.import_execution(e)
        if not stored.duplicate:
            return "created"
        twin = stored.execution
        _require_the_same_run(twin, e)
        if twin.span_id == e.span_id and twin.status == "running" and e.status != "running":
            # Imported while it ran (a breakdown's in_progress task); the file now has its outcome.
            error = e.error.model_dump(include={"type", "message", "stack"}) if e.error else None
            await self._store.finish(
                FinishRequest(
                    span_id=e.span_id,
                    status=e.status,
                    error=error,
                    result=e.result,
                    io=e.io,  # type: ignore[arg-type]
                    usage=e.usage,
                    ended_at=e.ended_at,
                )
            )
            return "updated"
        return "duplicate"


def _require_the_same_run(twin: Execution, e: Execution) -> None:
    """The stored execution the store matched `e` to must be `e` itself (by span_id), with no other
    outcome: an idempotency key that names another run, or another finish, would otherwise count as
    "already present" while the file's record is dropped."""
    if twin.span_id != e.span_id:
        raise Conflict(
            "idempotency_key",
            f"{e.idempotency_key!r} already names execution {twin.span_id} of task {twin.task_id} in this "
            f"store; execution {e.span_id} was not imported",
            hint="Import into a store without that key, or export the other run's history too.",
        )
    if "running" not in (twin.status, e.status) and twin.status != e.status:
        raise Conflict(
            "status",
            f"execution {e.span_id} is stored as {twin.status}, the file says {e.status}; the stored "
            "record stands",
            hint="An execution finishes once: drop one of the two records before importing.",
        )


@dataclass
class _TaskReplay:
    """What a dry run knows of one task while it follows the replayed events: whether its row
    exists, whether a top-level execution and which workers' executions are running."""

    exists: bool = False
    running: bool = False
    workers: set[str] = field(default_factory=set)
    finished: bool = False  # its state is terminal (a late task_started is then closed at once)
    last: datetime | None = None  # the ts of its latest event (an older one arrives "late")


class _DryRun:
    def __init__(
        self, store: Store | None, report: ImportReport, on_item: Callable[[str], None] | None
    ) -> None:
        self._store, self._report, self._on_item = store, report, on_item
        self._seen: set[tuple[str, str]] = set()
        self._tasks: dict[str, _TaskReplay] = {}

    async def batch(self, items: list[Item]) -> list[Problem | None]:
        known = await self._known(items)
        for task_id in sorted({i.payload.task_id for i in items if isinstance(i.payload, EventRequest)}):
            if task_id not in self._tasks:
                self._tasks[task_id] = await self._task_now(task_id)
        return [self._consider(item, known) for item in items]

    async def _task_now(self, task_id: str) -> _TaskReplay:
        """The task as the store holds it before the import."""
        if self._store is None:
            return _TaskReplay()
        timeline = await self._store.timeline(task_id, limit=1)  # the row and the latest event
        status = timeline.task
        if status is None:
            return _TaskReplay()
        replay = _TaskReplay(exists=True, finished=status.state in lifecycle.TERMINAL_STATES)
        replay.last = timeline.events[-1].ts if timeline.events else None
        cursor: str | None = None
        while True:
            page = await self._store.list_executions(
                ExecutionFilter(task_id=task_id, status="running"), limit=100, cursor=cursor
            )
            for e in page.executions:
                if e.worker_id is not None:
                    replay.workers.add(e.worker_id)
                elif e.span_id == status.current_span_id and e.parent_span_id is None:
                    replay.running = True
            if page.next_cursor is None:
                return replay
            cursor = page.next_cursor

    def _replay(self, item: Item, event: EventRequest) -> None:
        """Count (and list) the task row and the execution this event would make."""
        task = self._tasks.setdefault(event.task_id, _TaskReplay())
        if not task.exists:
            task.exists = True
            self._seen.add(("task", event.task_id))
            self._report.created["tasks"] += 1
            self._list(f"task {event.task_id} (its first event)", item)
        late = task.last is not None and event.ts is not None and event.ts < task.last
        if not late and event.ts is not None:
            task.last = event.ts
        effect = lifecycle.effect_of(event.event_type)
        worker = str(event.data.get("worker_id", ""))
        if effect is lifecycle.Effect.OPEN_TASK and not task.running:
            task.running = not (late and task.finished)
            self._opened(item, f"execution of {event.task_id} (opened by {event.event_type})")
        elif effect is lifecycle.Effect.OPEN_WORKER and worker not in task.workers:
            task.workers.add(worker)
            self._opened(item, f"execution of {event.task_id} worker {worker} (opened by {event.event_type})")
        elif effect is lifecycle.Effect.CLOSE_WORKER:
            task.workers.discard(worker)
        elif effect is lifecycle.Effect.CLOSE_TASK:
            task.running = False
        if not late and not lifecycle.is_custom_type(event.event_type):
            if effect is lifecycle.Effect.OPEN_TASK:
                task.finished = False
            elif effect is lifecycle.Effect.CLOSE_TASK:
                task.finished = True

    def _opened(self, item: Item, label: str) -> None:
        self._report.created["executions"] += 1
        self._list(label, item)

    def _list(self, label: str, item: Item) -> None:
        if self._on_item is not None:
            self._on_item(f"would create {label}  ({item.where})")

    def _consider(self, item: Item, known: set[tuple[str, str]]) -> Problem | None:
        trouble = _check(item)
        if trouble is not None:
            return Problem(item.where, trouble)
        identity = item.identity
        first_again = item.kind == "first_event" and ("task", _task_of(item)) in known | self._seen
        if identity in known or identity in self._seen or first_again:
            self._report.duplicates += 1
            return None
        self._seen.add(identity)
        self._report.created[_NOUNS[item.kind]] += 1
        self._list(item.label, item)
        if isinstance(item.payload, EventRequest):
            self._replay(item, item.payload)
        elif isinstance(item.payload, StoredTask):
            self._tasks.setdefault(item.payload.task_id, _TaskReplay()).exists = True
        return None

    async def _known(self, items: list[Item]) -> set[tuple[str, str]]:
        """The identities the store already has, and the tasks of first_events that have a row."""
        if self._store is None:
            return set()
        wanted = [item.identity for item in items]
        wanted += [("task", _task_of(item)) for item in items if item.kind == "first_event"]
        known: set[tuple[str, str]] = set()
        for kind in {k for k, _ in wanted}:
            ids = sorted({i for k, i in wanted if k == kind})
            known |= {(kind, found) for found in await self._store.known_ids(kind, ids)}  # type: ignore[arg-type]
        return known


def _task_of(item: Item) -> str:
    assert isinstance(item.payload, EventRequest | LifecycleEvent)
    return item.payload.task_id


def _check(item: Item) -> str | None:
    """What a live import would refuse before writing (the rest needs the database)."""
    if isinstance(item.payload, EventRequest):
        try:
            lifecycle.check_event(item.payload.event_type, item.payload.data)
        except StoreError as exc:
            return _sentence(exc)
    return None


def _sentence(error: StoreError) -> str:
    return f"{error.message}. {error.hint}" if error.hint else error.message
