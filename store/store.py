"""`Store`: the one façade that the MCP tools, the CLI and the importers call.

Each public method validates its input with the pure rules (store.rules, store.lifecycle)
and hands the I/O to a backend; nothing outside `store/` sees a connection or a cursor.
Writes return only after their transaction has committed."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from types import TracebackType
from typing import Any

from pydantic import BaseModel

from store.backend import Backend, BackendOptions
from store.errors import InvalidInput
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
from store.lifecycle import check_event
from store.rules import Policy, check_data

LIST_LIMIT_MAX = 100
FAILED_LIMIT_MAX = 50
TIMELINE_LIMIT_MAX = 500


class Store:
    """Durable, idempotent history of task executions and lifecycle events."""

    def __init__(self, backend: Backend, policy: Policy) -> None:
        self._backend = backend
        self._policy = policy

    @classmethod
    async def open(cls, database_url: str, *, policy: Policy | None = None, options: BackendOptions | None = None) -> Store:
        """Open (creating and migrating) the database at `database_url`."""
        from store.sqlite.backend import SqliteBackend, sqlite_path

        policy = policy or Policy()
        backend = await SqliteBackend.open(sqlite_path(database_url), policy, options or BackendOptions())
        return cls(backend, policy)

    async def close(self) -> None:
        await self._backend.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # ---- writes ----------------------------------------------------------------------

    async def start(self, req: StartRequest) -> StartResult:
        """Open an execution; a repeated idempotency key returns the first one, marked duplicate."""
        check_encodable(req)
        return await self._backend.start(req)

    async def finish(self, req: FinishRequest) -> FinishResult:
        """Close a running execution; the same outcome twice is a no-op, a different one a Conflict."""
        check_encodable(req)
        return await self._backend.finish(req)

    async def record(self, req: RecordRequest) -> StartResult:
        """Store one complete execution at once (idempotent like start)."""
        check_encodable(req)
        return await self._backend.record(req)

    async def log_event(self, req: EventRequest) -> EventResult:
        """Append a lifecycle event and apply what it does to the task and its executions."""
        check_encodable(req)
        check_event(req.event_type, req.data)
        check_data(self._policy, "data", req.data)
        return await self._backend.log_event(req)

    async def import_execution(self, execution: Execution) -> StartResult:
        """Store a whole record as given (from an experience document); idempotent on span_id."""
        check_encodable(execution)
        return await self._backend.import_execution(execution)

    # ---- reads -----------------------------------------------------------------------

    async def list_executions(
        self, filters: ExecutionFilter | None = None, *, limit: int = 20, cursor: str | None = None
    ) -> ExecutionPage:
        """Executions matching `filters`, newest first, one keyset page at a time."""
        _check_limit(limit, LIST_LIMIT_MAX)
        return await self._backend.list_executions(filters or ExecutionFilter(), limit, cursor)

    async def trace(self, trace_id: str) -> TraceView:
        """Everything recorded under one trace; an unknown trace is an empty view with found=False."""
        return await self._backend.trace(trace_id.strip().lower())

    async def last_failed(
        self,
        *,
        limit: int = 10,
        task_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        unique_errors: bool = False,
    ) -> LastFailed:
        """The most recent failures, plus error patterns over every failure in the window."""
        _check_limit(limit, FAILED_LIMIT_MAX)
        return await self._backend.last_failed(limit, task_id, since, until, unique_errors)

    async def get(self, span_id: str) -> ExecutionDetail:
        """One execution in full with its events; NotFound when there is none."""
        return await self._backend.get(span_id.strip().lower())

    async def task_status(self, task_id: str) -> TaskStatus:
        """A task's derived state (seed 004); NotFound when nothing was recorded for it."""
        return await self._backend.task_status(task_id)

    async def timeline(self, task_id: str, *, limit: int = TIMELINE_LIMIT_MAX) -> TaskTimeline:
        """A task's state, executions and events in time order (the most recent `limit` of each)."""
        _check_limit(limit, TIMELINE_LIMIT_MAX)
        return await self._backend.timeline(task_id, limit)


def _check_limit(limit: int, maximum: int) -> None:
    if not 1 <= limit <= maximum:
        raise InvalidInput("limit", f"is {limit}; it must be between 1 and {maximum}")


def check_encodable(model: BaseModel) -> None:
    """Refuse text that cannot be stored as UTF-8 (lone surrogates from a broken client)."""
    bad = _unencodable_path(model.model_dump(), "")
    if bad is not None:
        raise InvalidInput(
            bad or "input",
            "contains text that is not valid UTF-8 (a lone surrogate such as \\ud800)",
            hint="Send well-formed Unicode text; decode bytes with errors='replace' before sending.",
        )


def _unencodable_path(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path
        return None
    items: Iterable[tuple[str, Any]] = ()
    if isinstance(value, dict):
        items = ((f"{path}.{k}" if path else str(k), v) for k, v in value.items())
        if any(_unencodable_path(k, path) is not None for k in value):
            return path or "input"
    elif isinstance(value, (list, tuple)):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    return next((found for p, v in items if (found := _unencodable_path(v, p)) is not None), None)
