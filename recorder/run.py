"""`Run`: one execution as the agent sees it while it works, as a context manager (sync and async).

On entry it records the start; on a normal exit it records success (or partial, if the caller said
so); on an exception it records failed with the exception's type, message and traceback, then lets
the exception go on. KeyboardInterrupt, SystemExit and task cancellation record `cancelled`.
While it runs, the caller adds what it did (files, tool calls, artifacts, script runs, token usage,
a result text) and logs events that belong to it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import traceback
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from recorder.ops import Op, ref_arg

if TYPE_CHECKING:
    from recorder.recorder import Recorder

_CURRENT: ContextVar[Run | None] = ContextVar("task_history_run", default=None)
Outcome = Literal["success", "failed", "partial", "cancelled"]


def current_run() -> Run | None:
    """The execution the calling code runs inside (set by `Recorder.execution` and `Recorder.task`)."""
    return _CURRENT.get()


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Run:
    def __init__(
        self, recorder: Recorder, start: Op, *, task_id: str, trace_id: str | None, attempt: int
    ) -> None:
        self._recorder = recorder
        self._start = start
        self.ref: str = start.ref or ""
        self.task_id = task_id
        self._trace_guess = trace_id
        self._attempt_guess = attempt
        self.result: str | None = None
        self.status: Outcome | None = None
        self.error: BaseException | None = None
        self._io: dict[str, list[str]] = {
            "files_written": [],
            "artifact_ids": [],
            "tool_calls": [],
            "script_runs": [],
        }
        self._usage: dict[str, Any] = {}
        self._partial = False
        self._token: Token[Run | None] | None = None
        self._started: concurrent.futures.Future[Any] | None = None

    # ---- what the caller adds --------------------------------------------------------------

    def add_files(self, *paths: str) -> None:
        self._io["files_written"].extend(map(str, paths))

    def add_tool_calls(self, *ids: str) -> None:
        self._io["tool_calls"].extend(ids)

    def add_artifacts(self, *ids: str) -> None:
        self._io["artifact_ids"].extend(ids)

    def add_script_runs(self, *ids: str) -> None:
        self._io["script_runs"].extend(ids)

    def add_usage(self, input_tokens: int = 0, output_tokens: int = 0, cost: float | None = None) -> None:
        """Token counts add up over calls (one per model call, say)."""
        for name, value in (("input_tokens", input_tokens), ("output_tokens", output_tokens), ("cost", cost)):
            if value:
                self._usage[name] = self._usage.get(name, 0) + value

    def set_result(self, text: str) -> None:
        self.result = text

    def mark_partial(self, reason: str | None = None) -> None:
        """End as `partial` instead of success (a reason becomes the result text if there is none)."""
        self._partial = True
        if reason and self.result is None:
            self.result = reason

    def event(self, event_type: str, **data: Any) -> str:
        """Log a lifecycle event that belongs to this execution; returns its event_id."""
        return self._recorder.event(event_type, self.task_id, run=self, **data)

    @property
    def span_id(self) -> str | None:
        """The store's span_id, once the start has been delivered (a direct recorder knows it at once)."""
        return self._recorder._span_of(self.ref)

    @property
    def trace_id(self) -> str | None:
        """The store's trace_id once the start has been delivered (for a duplicate start: the first
        run's trace); until then what the recorder expects (None when the store picks it)."""
        started = self._recorder._started(self.ref)
        return started.trace_id if started is not None else self._trace_guess

    @property
    def attempt(self) -> int:
        """The store's attempt number once the start has been delivered; until then the expected one."""
        started = self._recorder._started(self.ref)
        return started.attempt if started is not None else self._attempt_guess

    @property
    def duplicate(self) -> bool:
        """True when the store already had this run (the same schedule slot or idempotency key)."""
        started = self._recorder._started(self.ref)
        return started is not None and started.duplicate

    # ---- sync context manager --------------------------------------------------------------

    def __enter__(self) -> Run:
        self._begin()
        self._recorder._wait(self._started)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._recorder._wait(self._end(exc))

    # ---- async context manager -------------------------------------------------------------

    async def __aenter__(self) -> Run:
        self._begin()
        await self._recorder._await(self._started)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._recorder._await(self._end(exc))

    # ---- the records -----------------------------------------------------------------------

    def _begin(self) -> None:
        self._start.args["started_at"] = iso(datetime.now(UTC))
        self._started = self._recorder._send(self._start)
        self._token = _CURRENT.set(self)

    def _end(self, exc: BaseException | None) -> concurrent.futures.Future[Any] | None:
        if self._token is not None:
            _CURRENT.reset(self._token)
            self._token = None
        self.status, error = _outcome(exc, self._partial)
        self.error = exc
        args: dict[str, Any] = {
            "span_id": ref_arg(self.ref),
            "status": self.status,
            "ended_at": iso(datetime.now(UTC)),
        }
        if error is not None:
            args["error"] = error
        if self.result is not None:
            args["result"] = self.result
        if any(self._io.values()):
            args["io"] = self._io
        if self._usage:
            args["usage"] = self._usage
        return self._recorder._send(Op("finish", args))


def _outcome(exc: BaseException | None, partial: bool) -> tuple[Outcome, dict[str, str] | None]:
    if exc is None:
        return ("partial" if partial else "success"), None
    error = {
        "type": type(exc).__name__,
        "message": str(exc) or type(exc).__name__,
        "stack": "".join(traceback.format_exception(exc)),
    }
    cancelled = isinstance(exc, (KeyboardInterrupt, SystemExit, asyncio.CancelledError, GeneratorExit))
    return ("cancelled" if cancelled else "failed"), error
