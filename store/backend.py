"""The contract between the `Store` façade and a storage engine. SQLite is the engine
today; a second engine (PostgreSQL) implements the same protocol, so `server/` never
learns which one it is talking to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

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
    RecordRequest,
    StartRequest,
    StartResult,
    TaskStatus,
    TaskTimeline,
    TraceView,
)


@dataclass(frozen=True)
class BackendOptions:
    """Engine tuning from the settings."""

    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    busy_timeout_ms: int = 5000
    write_batch_max: int = 256
    readers: int = 4


class Backend(Protocol):
    async def close(self) -> None: ...

    async def start(self, req: StartRequest) -> StartResult: ...

    async def finish(self, req: FinishRequest) -> FinishResult: ...

    async def record(self, req: RecordRequest) -> StartResult: ...

    async def log_event(self, req: EventRequest) -> EventResult: ...

    async def import_execution(self, execution: Execution) -> StartResult: ...

    async def list_executions(self, filters: ExecutionFilter, limit: int, cursor: str | None) -> ExecutionPage: ...

    async def trace(self, trace_id: str) -> TraceView: ...

    async def last_failed(
        self, limit: int, task_id: str | None, since: datetime | None, until: datetime | None, unique_errors: bool
    ) -> LastFailed: ...

    async def get(self, span_id: str) -> ExecutionDetail: ...

    async def task_status(self, task_id: str) -> TaskStatus: ...

    async def timeline(self, task_id: str, limit: int) -> TaskTimeline: ...
