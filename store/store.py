"""`Store`: the one façade that the MCP tools, the CLI and the importers call.

Each public method validates its input with the pure rules (store.rules, store.lifecycle)
and hands the I/O to a backend; nothing outside `store/` sees a connection or a cursor.
Writes return only after their transaction has committed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from types import TracebackType
from typing import Any

from pydantic import BaseModel

from store.analysis import (
    EFFECTS_LIMIT_MAX,
    PATTERNS_LIMIT_MAX,
    STATS_GROUPS_MAX,
    STORY_LIMIT_MAX,
    FailurePage,
    FailurePatterns,
    SideEffectKind,
    SideEffectPage,
    StatsGroupBy,
    StepKey,
    Story,
    TaskStats,
)
from store.backend import Backend, BackendOptions, HistoryScans
from store.engines import open_backend
from store.errors import InvalidInput, StoreError, StoreUnavailable
from store.lifecycle import check_event, check_references
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
from store.rules import Policy, check_data
from store.timeutil import now_utc

LIST_LIMIT_MAX = 100
FAILED_LIMIT_MAX = 50
TIMELINE_LIMIT_MAX = 500
SCAN_LIMIT = 500


class HistorySnapshot:
    """Store.scan_executions, scan_events and scan_tasks, all reading one snapshot
    (Store.history_snapshot)."""

    def __init__(self, scans: HistoryScans) -> None:
        self._scans = scans

    async def scan_executions(
        self, *, after: int = 0, limit: int = SCAN_LIMIT, since: datetime | None = None,
        until: datetime | None = None,
    ) -> Page[Execution]:  # fmt: skip
        return await self._scans.scan_executions(after, limit, since, until)

    async def scan_events(
        self, *, after: int = 0, limit: int = SCAN_LIMIT, since: datetime | None = None,
        until: datetime | None = None,
    ) -> Page[LifecycleEvent]:  # fmt: skip
        return await self._scans.scan_events(after, limit, since, until)

    async def scan_tasks(
        self, *, after: str = "", limit: int = SCAN_LIMIT, since: datetime | None = None,
        until: datetime | None = None,
    ) -> Page[StoredTask]:  # fmt: skip
        return await self._scans.scan_tasks(after, limit, since, until)


class Store:
    """Durable, idempotent history of task executions and lifecycle events."""

    def __init__(self, backend: Backend, policy: Policy) -> None:
        self._backend = backend
        self._policy = policy
        self._closed = False

    @classmethod
    async def open(
        cls, database_url: str, *, policy: Policy | None = None, options: BackendOptions | None = None
    ) -> Store:
        """Open (creating and migrating) the database at `database_url`: a SQLite path or
        sqlite:/// URL, or a postgresql:// URL (store.engines)."""
        policy = policy or Policy()
        try:
            backend = await open_backend(database_url, policy, options or BackendOptions())
        except StoreError:
            raise
        except Exception as exc:  # OSError, a driver's connection error: say which database, and how to fix
            raise StoreUnavailable(
                f"cannot open the database {database_url!r} ({exc})",
                hint="Point --db / TASK_HISTORY_DATABASE_URL at a writable file location or a "
                "reachable server.",
            ) from exc
        return cls(backend, policy)

    async def close(self) -> None:
        """Commit what is queued, then let go of the database; closing again does nothing (the
        PostgreSQL engine's second close used to fail on its shut-down thread)."""
        if self._closed:
            return
        self._closed = True
        await self._backend.close()

    async def ping(self) -> None:
        """Prove a reader answers (for health checks); raises StoreUnavailable when it does not."""
        try:
            await self._backend.ping()
        except StoreError:
            raise
        except Exception as exc:
            raise StoreUnavailable(f"the database did not answer ({exc})") from exc

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
        check_references(req.span_id, req.trace_id)
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
        filters = filters or ExecutionFilter()
        _check_window(filters.since, filters.until)
        return await self._backend.list_executions(filters, limit, cursor)

    async def trace(self, trace_id: str) -> TraceView:
        """Everything recorded under one trace; an unknown trace is an empty view with found=False."""
        _check_no_nul("trace_id", trace_id)
        key = trace_id.strip().lower()
        if not key:
            raise InvalidInput(
                "trace_id", "is blank", hint="Pass a trace_id from tasks_list or tasks_last_failed."
            )
        return await self._backend.trace(key)

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
        _check_window(since, until)
        return await self._backend.last_failed(limit, task_id, since, until, unique_errors)

    async def failure_page(
        self, *, limit: int = 10, task_id: str | None = None, since: datetime | None = None,
        until: datetime | None = None, unique_errors: bool = False, before: tuple[int, int] | None = None,
    ) -> FailurePage:  # fmt: skip
        """last_failed with where each failure stands ((started_us, seq)), and from `before` (the
        position of the last failure a page showed) the page after it: tasks_last_failed's cursor."""
        _check_limit(limit, FAILED_LIMIT_MAX)
        _check_window(since, until)
        return await self._backend.failure_page(limit, task_id, since, until, unique_errors, before)

    async def get(self, span_id: str) -> ExecutionDetail:
        """One execution in full with its events; NotFound when there is none."""
        return await self._backend.get(span_id.strip().lower())

    async def event(self, event_id: str) -> LifecycleEvent:
        """One lifecycle event with its whole data; NotFound when there is none."""
        return await self._backend.event(event_id)

    async def task_status(self, task_id: str) -> TaskStatus:
        """A task's derived state (seed 004); NotFound when nothing was recorded for it."""
        return await self._backend.task_status(task_id)

    async def timeline(self, task_id: str, *, limit: int = TIMELINE_LIMIT_MAX) -> TaskTimeline:
        """A task's state, executions and events in time order (the most recent `limit` of each)."""
        _check_limit(limit, TIMELINE_LIMIT_MAX)
        return await self._backend.timeline(task_id, limit)

    # ---- whole-history moves: import, export, retention (store.importers, store.export, ...) ----

    @property
    def policy(self) -> Policy:
        """What this store enforces at write time (importers scrub foreign records the same way)."""
        return self._policy

    async def import_event(self, event: LifecycleEvent) -> bool:
        """Store an event exactly as exported, without re-applying what it does; False if its id exists."""
        check_encodable(event)
        return await self._backend.import_event(event)

    async def import_task(self, task: StoredTask) -> ImportOutcome:
        """Store a task row as exported; an existing row is replaced only by a newer one."""
        check_encodable(task)
        return await self._backend.import_task(task)

    async def scan_executions(
        self,
        *,
        after: int = 0,
        limit: int = SCAN_LIMIT,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Page[Execution]:
        """Every execution started in [since, until), in storage order, one page at a time."""
        return await self._backend.scan_executions(after, limit, since, until)

    async def scan_events(
        self,
        *,
        after: int = 0,
        limit: int = SCAN_LIMIT,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Page[LifecycleEvent]:
        """Every event whose ts is in [since, until), in storage order, one page at a time."""
        return await self._backend.scan_events(after, limit, since, until)

    async def scan_tasks(
        self,
        *,
        after: str = "",
        limit: int = SCAN_LIMIT,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Page[StoredTask]:
        """Task rows by task_id; with a window, the tasks with an execution or event in it."""
        return await self._backend.scan_tasks(after, limit, since, until)

    @asynccontextmanager
    async def history_snapshot(self) -> AsyncIterator[HistorySnapshot]:
        """scan_executions, scan_events and scan_tasks on one read snapshot, for as long as the block
        runs: an export made while others write is then one point in time. (On SQLite the WAL file
        grows until the block ends: its pages cannot be checkpointed past an open read.)"""
        async with self._backend.history_snapshot() as scans:
            yield HistorySnapshot(scans)

    async def known_ids(self, kind: IdKind, ids: Sequence[str]) -> set[str]:
        """Which of `ids` (span ids, event ids, task ids or idempotency keys) are already stored."""
        return await self._backend.known_ids(kind, ids)

    async def exported_spans(self, destination: str, span_ids: Sequence[str]) -> set[str]:
        """Which of these spans were already delivered to `destination` (an OTLP endpoint)."""
        return await self._backend.exported_spans(destination, span_ids)

    async def mark_exported(self, destination: str, span_ids: Sequence[str]) -> int:
        return await self._backend.mark_exported(destination, span_ids, now_utc())

    async def prune_traces(
        self, retention: Retention, *, after: str = "", limit: int = SCAN_LIMIT
    ) -> tuple[PruneBatch, str | None]:
        """The next traces retention lets go: nothing running, every execution past its cutoff."""
        return await self._backend.prune_traces(retention, after, limit)

    async def prune_events(
        self, before: datetime, *, after: int = 0, limit: int = SCAN_LIMIT
    ) -> tuple[PruneBatch, int | None]:
        """Events older than `before` that belong to nothing still running."""
        return await self._backend.prune_events(before, after, limit)

    async def prune_orphan_tasks(
        self, before: datetime, *, after: str = "", limit: int = SCAN_LIMIT
    ) -> tuple[PruneBatch, str | None]:
        """Task rows with nothing left to summarize, untouched since `before`."""
        return await self._backend.prune_orphan_tasks(before, after, limit)

    async def prune(self, batch: PruneBatch) -> PruneCounts:
        """Delete a batch in one transaction; parts that changed since they were read are kept."""
        return await self._backend.prune(batch)

    # ---- debugging reads (store.analysis) --------------------------------------------

    async def failure_patterns(
        self, *, task_id: str | None = None, since: datetime | None = None, until: datetime | None = None,
        limit: int = 10, offset: int = 0,
    ) -> FailurePatterns:  # fmt: skip
        """Failure groups by fingerprint in the window, commonest first, `limit` from `offset`."""
        _check_limit(limit, PATTERNS_LIMIT_MAX)
        if offset < 0:
            raise InvalidInput("offset", f"is {offset}; it must be 0 or more")
        _check_window(since, until)
        return await self._backend.failure_patterns(task_id, since, until, limit, offset)

    async def stats(
        self, *, task_id: str | None = None, task_type: str | None = None, since: datetime | None = None,
        until: datetime | None = None, group_by: StatsGroupBy | None = None, workers: bool = False,
        limit: int = 20,
    ) -> TaskStats:  # fmt: skip
        """Run counts, rates, duration percentiles and token totals, overall or per group."""
        _check_limit(limit, STATS_GROUPS_MAX)
        _check_window(since, until)
        return await self._backend.run_stats(task_id, task_type, since, until, group_by, workers, limit)

    async def story(
        self, *, task_id: str | None = None, trace_id: str | None = None, until: datetime | None = None,
        limit: int = STORY_LIMIT_MAX, before: StepKey | None = None,
    ) -> Story:  # fmt: skip
        """The most recent executions and events of one task or one trace before `until`, and
        before the step `before` (store.analysis.step_key of the oldest step a page showed)."""
        if (task_id is None) == (trace_id is None):
            raise InvalidInput(
                "task_id",
                "give exactly one of task_id and trace_id",
                hint="A timeline is of one task or one trace.",
            )
        _check_limit(limit, STORY_LIMIT_MAX)
        _check_no_nul("trace_id", trace_id)
        trace = trace_id.strip().lower() if trace_id else None
        return await self._backend.story(task_id, trace, until, limit, before)

    async def side_effects(
        self, kind: SideEffectKind, value: str, *, since: datetime | None = None,
        until: datetime | None = None, task_id: str | None = None, limit: int = 20, cursor: str | None = None,
    ) -> SideEffectPage:  # fmt: skip
        """Executions that declared this side effect (a file written, a directory, a tool called),
        newest first, one keyset page at a time."""
        _check_limit(limit, EFFECTS_LIMIT_MAX)
        if not value:
            raise InvalidInput(kind, "is empty", hint="Name a file path, a directory ending in /, or a tool.")
        _check_no_nul("tool_call" if kind == "tool" else "file", value)
        _check_window(since, until)
        return await self._backend.side_effects(kind, value, since, until, task_id, limit, cursor)


def _check_window(since: datetime | None, until: datetime | None) -> None:
    """A window that ends before it begins is a mistake, not a question with no answer."""
    if since is not None and until is not None and until < since:
        raise InvalidInput(
            "until",
            f"{until.isoformat()} is before since ({since.isoformat()})",
            hint="Give since the window's start and until its end (until is exclusive), or swap them.",
        )


def _check_no_nul(field: str, value: str | None) -> None:
    """A looked-up id or value with NUL in it: no write stores one (check_encodable), and
    PostgreSQL refuses it even as a parameter, so both engines refuse it alike."""
    if value is not None and "\x00" in value:
        raise InvalidInput(
            field, "contains a NUL character (\\x00), which no stored id or text holds", hint="Remove it."
        )


def _check_limit(limit: int, maximum: int) -> None:
    if not 1 <= limit <= maximum:
        raise InvalidInput("limit", f"is {limit}; it must be between 1 and {maximum}")


def check_encodable(model: BaseModel) -> None:
    """Refuse text that cannot be stored as UTF-8 (lone surrogates from a broken client), and
    text holding NUL, which PostgreSQL cannot store: every write and import passes here, so both
    engines refuse the same records, naming the field."""
    try:
        if _plainly_encodable(model):
            return
    except RecursionError:  # nested too deep for the walk (or circular): the full check decides
        pass
    dumped = model.model_dump()
    try:
        # Every string inside (keys too) lands in this text unescaped, so one C-speed encode
        # finds whether any is bad; only then is the walk below needed, to name the field.
        text = json.dumps(dumped, ensure_ascii=False, default=str)
        text.encode("utf-8")
    except (UnicodeEncodeError, TypeError, ValueError):
        pass
    else:
        if "\\u0000" not in text:  # json.dumps writes a NUL as that escape
            return
    found = _unstorable_path(dumped, "")
    if found is not None:
        path, why = found
        problem, hint = _UNSTORABLE[why]
        raise InvalidInput(path or "input", problem, hint=hint)


_UNSTORABLE = {
    "surrogate": (
        "contains text that is not valid UTF-8 (a lone surrogate such as \\ud800)",
        "Send well-formed Unicode text; decode bytes with errors='replace' before sending.",
    ),
    "nul": (
        "contains a NUL character (\\x00), which the store does not keep (PostgreSQL cannot hold it)",
        "Remove it, or replace it with U+FFFD.",
    ),
}


_ATOMS = frozenset({type(None), bool, int, float, datetime})
"""Leaves whose JSON text (default=str for datetime) is ASCII."""


def _plainly_encodable(value: Any) -> bool:
    """True when every string inside `value` (dict keys too) encodes as UTF-8 and holds no NUL,
    walking the models' own fields: a few microseconds where model_dump and json.dumps take several
    times that on every write. False when a string does not, or when the walk meets something it
    does not know (a str or dict subclass, a set, extra or computed model fields): then the full
    check above decides, exactly as before."""
    kind = type(value)
    if kind is str:
        return _storable(value)
    if kind in _ATOMS:
        return True
    if kind is dict:
        return all(type(k) is str and _storable(k) and _plainly_encodable(v) for k, v in value.items())
    if kind is list or kind is tuple:
        return all(map(_plainly_encodable, value))
    if isinstance(value, BaseModel):
        if kind.model_computed_fields or value.__pydantic_extra__:
            return False
        return all(map(_plainly_encodable, value.__dict__.values()))
    return False


def _storable(text: str) -> bool:
    return "\x00" not in text and (text.isascii() or _encodes(text))


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unstorable_path(value: Any, path: str) -> tuple[str, str] | None:
    """The path of the first string (or key) inside `value` that cannot be stored, and why."""
    if isinstance(value, str):
        if "\x00" in value:
            return path, "nul"
        return None if _encodes(value) else (path, "surrogate")
    items: Iterable[tuple[str, Any]] = ()
    if isinstance(value, dict):
        for key in value:
            if (found := _unstorable_path(key, path)) is not None:
                return path or "input", found[1]
        items = ((f"{path}.{k}" if path else str(k), v) for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    return next((found for p, v in items if (found := _unstorable_path(v, p)) is not None), None)
