"""Running an import: read the paths (store.importers.sources), write each record through the
`Store` in batches, count what happened, and say where every skipped record was.

Writes of a batch are submitted together, in file order: the store's single writer runs them in
that order inside one transaction (each in its own savepoint), so events apply in sequence and a
record the store refuses is reported and skipped without disturbing the others. A dry run reads
and checks everything, asks the store which records it already has, and writes nothing."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from store import lifecycle, rules
from store.errors import StoreError
from store.importers.items import Item, Problem
from store.importers.sources import Format, files_of, read_all, total_bytes
from store.models import EventRequest, Execution, FinishRequest, LifecycleEvent
from store.records import StoredTask
from store.store import Store

BATCH = 256
_NOUNS = {"event": "events", "raw_event": "events", "execution": "executions", "task": "tasks"}


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

    async def batch(self, items: list[Item]) -> list[Problem | None]:
        """Write the items in order; one entry per item: the problem that kept it out, or None."""
        outcomes = await asyncio.gather(*(self._write(item) for item in items), return_exceptions=True)
        problems: list[Problem | None] = []
        for item, outcome in zip(items, outcomes, strict=True):
            refused = isinstance(outcome, StoreError)
            problems.append(Problem(item.where, _sentence(outcome)) if refused else None)  # type: ignore[arg-type]
            if isinstance(outcome, BaseException) and not isinstance(outcome, StoreError):
                raise outcome
            if outcome == "created":
                self._report.created[_NOUNS[item.kind]] += 1
            elif outcome == "updated":
                self._report.updated += 1
            elif outcome in ("duplicate", "unchanged"):
                self._report.duplicates += 1
        return problems

    async def _write(self, item: Item) -> str:
        p = item.payload
        if isinstance(p, EventRequest):
            return "duplicate" if (await self._store.log_event(p)).duplicate else "created"
        if isinstance(p, LifecycleEvent):
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


class _DryRun:
    def __init__(
        self, store: Store | None, report: ImportReport, on_item: Callable[[str], None] | None
    ) -> None:
        self._store, self._report, self._on_item = store, report, on_item
        self._seen: set[tuple[str, str]] = set()

    async def batch(self, items: list[Item]) -> list[Problem | None]:
        known = await self._known(items)
        return [self._consider(item, known) for item in items]

    def _consider(self, item: Item, known: set[tuple[str, str]]) -> Problem | None:
        trouble = _check(item)
        if trouble is not None:
            return Problem(item.where, trouble)
        identity = item.identity
        if identity in known or identity in self._seen:
            self._report.duplicates += 1
            return None
        self._seen.add(identity)
        self._report.created[_NOUNS[item.kind]] += 1
        if self._on_item is not None:
            self._on_item(f"would create {item.label}  ({item.where})")
        return None

    async def _known(self, items: list[Item]) -> set[tuple[str, str]]:
        if self._store is None:
            return set()
        known: set[tuple[str, str]] = set()
        for kind in {item.identity[0] for item in items}:
            ids = [item.identity[1] for item in items if item.identity[0] == kind]
            known |= {(kind, found) for found in await self._store.known_ids(kind, ids)}
        return known


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
