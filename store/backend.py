"""The contract between the `Store` façade and a storage engine. SQLite is the engine
today; a second engine (PostgreSQL) implements the same protocol, so `server/` never
learns which one it is talking to."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from store.analysis import FailurePage, FailurePatterns, SideEffectPage, StepKey, Story, TaskStats
from store.models import (
    EventRequest,
    EventResult,
    Execution,
    ExecutionDetail,
    ExecutionFilter,
    ExecutionPage,
    FinishRequest,
    FinishResult,
    LastFailed,
    LifecycleEvent,
    RecordRequest,
    StartRequest,
    StartResult,
    TaskStatus,
    TaskTimeline,
    TraceView,
)
from store.records import IdKind, ImportOutcome, Page, PruneBatch, PruneCounts, Retention, StoredTask
from store.transfer import Row, Table, TableReport


class HistoryScans(Protocol):
    """Backend.scan_executions, scan_events and scan_tasks, every call on one read snapshot."""

    async def scan_executions(
        self, after: int, limit: int, since: datetime | None, until: datetime | None
    ) -> Page[Execution]: ...

    async def scan_events(
        self, after: int, limit: int, since: datetime | None, until: datetime | None
    ) -> Page[LifecycleEvent]: ...

    async def scan_tasks(
        self, after: str, limit: int, since: datetime | None, until: datetime | None
    ) -> Page[StoredTask]: ...


@dataclass(frozen=True)
class BackendOptions:
    """Engine tuning from the settings."""

    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    busy_timeout_ms: int = 5000
    write_batch_max: int = 256
    readers: int = 4


class Backend(HistoryScans, Protocol):
    async def close(self) -> None: ...

    async def ping(self) -> None: ...

    async def start(self, req: StartRequest) -> StartResult: ...

    async def finish(self, req: FinishRequest) -> FinishResult: ...

    async def record(self, req: RecordRequest) -> StartResult: ...

    async def log_event(self, req: EventRequest) -> EventResult: ...

    async def import_execution(self, execution: Execution) -> StartResult: ...

    async def list_executions(
        self, filters: ExecutionFilter, limit: int, cursor: str | None
    ) -> ExecutionPage: ...

    async def trace(self, trace_id: str) -> TraceView: ...

    async def last_failed(
        self,
        limit: int,
        task_id: str | None,
        since: datetime | None,
        until: datetime | None,
        unique_errors: bool,
    ) -> LastFailed: ...

    async def failure_page(
        self, limit: int, task_id: str | None, since: datetime | None, until: datetime | None,
        unique_errors: bool, before: tuple[int, int] | None,
    ) -> FailurePage: ...  # fmt: skip

    async def get(self, span_id: str) -> ExecutionDetail: ...

    async def task_status(self, task_id: str) -> TaskStatus: ...

    async def timeline(self, task_id: str, limit: int) -> TaskTimeline: ...

    async def event(self, event_id: str) -> LifecycleEvent: ...

    # ---- moving a history between backends (store.admin.copy_history) ----------------

    async def scan_rows(self, table: Table, after: Any, limit: int) -> list[Row]:
        """Raw rows in key order after `after`; row[0] is the key, row[1:] the columns."""
        ...

    async def copy_rows(self, table: Table, rows: list[Row]) -> TableReport:
        """Store the rows the backend does not have yet (idempotent)."""
        ...

    # ---- import, export, retention, span export tracking (store.sqlite.history) ----------

    async def import_event(self, event: LifecycleEvent) -> bool: ...

    async def import_task(self, task: StoredTask) -> ImportOutcome: ...

    # scan_executions, scan_events and scan_tasks: HistoryScans', each call on a snapshot of its own

    def history_snapshot(self) -> AbstractAsyncContextManager[HistoryScans]:
        """The three scans on one read snapshot."""
        ...

    async def known_ids(self, kind: IdKind, ids: Sequence[str]) -> set[str]: ...

    async def exported_spans(self, destination: str, span_ids: Sequence[str]) -> set[str]: ...

    async def mark_exported(self, destination: str, span_ids: Sequence[str], at: datetime) -> int: ...

    async def prune_traces(
        self, retention: Retention, after: str, limit: int
    ) -> tuple[PruneBatch, str | None]: ...

    async def prune_events(
        self, before: datetime, after: int, limit: int
    ) -> tuple[PruneBatch, int | None]: ...

    async def prune_orphan_tasks(
        self, before: datetime, after: str, limit: int
    ) -> tuple[PruneBatch, str | None]: ...

    async def prune(self, batch: PruneBatch) -> PruneCounts: ...

    # ---- debugging reads (store.sqlite.analysis_reads) -----------------------------------

    async def failure_patterns(
        self, task_id: str | None, since: datetime | None, until: datetime | None, limit: int, offset: int
    ) -> FailurePatterns: ...

    async def run_stats(
        self, task_id: str | None, task_type: str | None, since: datetime | None, until: datetime | None,
        group_by: str | None, workers: bool, limit: int,
    ) -> TaskStats: ...  # fmt: skip

    async def story(
        self, task_id: str | None, trace_id: str | None, until: datetime | None, limit: int,
        before: StepKey | None = None,
    ) -> Story: ...  # fmt: skip

    async def side_effects(
        self, kind: str, value: str, since: datetime | None, until: datetime | None, task_id: str | None,
        limit: int, cursor: str | None,
    ) -> SideEffectPage: ...  # fmt: skip
