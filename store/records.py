"""Models for moving whole histories in and out of the store (import, export, prune, span
export tracking). Pure pydantic, no I/O; the storage side lives in store.sqlite.history."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, Literal, TypeVar

from store.models import Execution, LifecycleEvent, TaskStatus

T = TypeVar("T")

ImportOutcome = Literal["created", "updated", "unchanged"]
IdKind = Literal["span", "event", "task", "idempotency_key"]


class StoredTask(TaskStatus):
    """A task row exactly as stored: its public state plus the two bookkeeping columns the
    event job keeps (the newest in-order event and the event that ended the task)."""

    last_event_at: datetime | None = None
    terminal_event_id: str | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a full scan in key order; `after` is where the next page starts (None: done)."""

    items: list[T]
    after: int | str | None


@dataclass(frozen=True)
class Retention:
    """What prune may remove: everything that ended before these instants (None keeps forever).

    Successful and cancelled executions age by `success_before`; failed and partial ones by
    `failed_before`; events by `events_before`."""

    success_before: datetime | None
    failed_before: datetime | None
    events_before: datetime | None


@dataclass
class PruneBatch:
    """What one prune step found: whole traces (their executions and every event that points at
    them), old events on their own, and task rows that nothing would refer to any more."""

    trace_ids: list[str] = field(default_factory=list)
    executions: list[Execution] = field(default_factory=list)
    events: list[LifecycleEvent] = field(default_factory=list)
    tasks: list[StoredTask] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.executions or self.events or self.tasks)


@dataclass
class PruneCounts:
    executions: int = 0
    events: int = 0
    tasks: int = 0
    skipped_traces: int = 0  # changed between reading and deleting: left for the next run

    def add(self, other: PruneCounts) -> None:
        self.executions += other.executions
        self.events += other.events
        self.tasks += other.tasks
        self.skipped_traces += other.skipped_traces
