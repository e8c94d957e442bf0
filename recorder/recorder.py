"""`Recorder`: how an agent or scheduler records its own executions (see MCP_INTEGRATION.md,
"Recording from Python: the recorder").

    with Recorder.remote("http://127.0.0.1:8001/mcp") as rec:      # or Recorder.direct("data/h.db")
        with rec.execution("daily_reflection", name="Daily Self-Reflection", trigger="scheduled") as run:
            run.add_files("reflections/2025-11-04.md")
            run.set_result("wrote today's reflection")

        @rec.task("nightly_ingest", attempts=3)       # sync or async; each attempt is recorded
        def ingest() -> None: ...

        rec.task_created("task-001", actor="user-ryan", priority="high")   # the 18 lifecycle events

Recording never makes the agent's work fail: writes go through an outbox that a background courier
delivers (recorder.courier). When the store is unreachable they wait there (bounded,
optionally spooled to a JSONL file) and go out, without duplicates, once it is back."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import inspect
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from recorder.courier import Courier, Delivery
from recorder.events import LifecycleEvents
from recorder.ops import Op, ref_arg
from recorder.outbox import Outbox
from recorder.run import Run, iso
from recorder.transports import DirectTransport, RemoteTransport, Started, Transport
from store.ids import derived_idempotency_key

log = logging.getLogger("task_history.recorder")
T = TypeVar("T")
Parent = Run | str | None
_WAIT_SLICE = 0.05  # how often a waiting agent notices that the store became unreachable


class Recorder(LifecycleEvents):
    """Records executions and lifecycle events in a task-history store, directly or over MCP.

    `wait` bounds how long entering and leaving an execution waits for its record to be delivered
    while the store is reachable (never while it is not); `buffer_limit` bounds the outbox; `spool`
    names a JSONL file that keeps undelivered records across a crash or a restart."""

    def __init__(
        self, transport: Transport, *, actor: str | None = None, spool: str | Path | None = None,
        buffer_limit: int = 10_000, wait: float = 2.0, backoff_max: float = 5.0,
    ) -> None:  # fmt: skip
        self.actor = actor
        self._wait_s = wait
        outbox = Outbox(buffer_limit, Path(spool) if spool is not None else None)
        self._courier = Courier(transport, outbox, backoff_max=backoff_max)
        self._courier.start()
        self._closed = False

    @classmethod
    def direct(cls, database: str | Path, **options: Any) -> Recorder:
        """Write straight into the database file (or URL), in this process, through the `Store`."""
        return cls(DirectTransport(str(database)), **options)

    @classmethod
    def remote(cls, url: str, *, token: str | None = None, timeout: float = 10.0, **options: Any) -> Recorder:
        """Write through a running task-history server (`make serve`), over MCP streamable HTTP."""
        return cls(RemoteTransport(url, token=token, timeout=timeout), **options)

    # ---- delivery --------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Records waiting to be delivered."""
        return self._courier.pending

    @property
    def dropped(self) -> int:
        """Records lost because the buffer was full."""
        return self._courier.dropped

    @property
    def online(self) -> bool | None:
        """Whether the last delivery attempt reached the store (None before the first)."""
        return self._courier.online

    @property
    def refused(self) -> list[str]:
        """Why the store refused records (each was dropped with a warning)."""
        return list(self._courier.refused)

    def flush(self, timeout: float = 10.0) -> bool:
        """Deliver everything queued now; True when nothing is left within `timeout` seconds."""
        return self._courier.flush(timeout)

    async def aflush(self, timeout: float = 10.0) -> bool:
        return await asyncio.to_thread(self._courier.flush, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Flush (up to `timeout`), then stop. What is still undelivered stays in the spool, if any."""
        if self._closed:
            return
        self._closed = True
        left = self._courier.close(timeout)
        if left:
            kept = (
                " (kept in the spool file)"
                if self._courier_has_spool()
                else "; configure spool= to keep them"
            )
            log.warning("task-history recorder closed with %d undelivered records%s", left, kept)

    async def aclose(self, timeout: float = 10.0) -> None:
        await asyncio.to_thread(self.close, timeout)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Recorder:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _courier_has_spool(self) -> bool:
        return self._courier._outbox._spool_path is not None

    def _send(self, op: Op) -> concurrent.futures.Future[Delivery]:
        if self._closed:
            raise RuntimeError("this recorder is closed")
        return self._courier.submit(op)

    def _wait(self, future: concurrent.futures.Future[Any] | None) -> None:
        """Wait (at most `wait` seconds) for a record to be delivered, unless the store is unreachable:
        then it stays queued and the agent goes on at once."""
        deadline = time.monotonic() + self._wait_s
        while future is not None and self._courier.online is not False:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            with contextlib.suppress(concurrent.futures.TimeoutError):
                future.result(min(left, _WAIT_SLICE))
                return

    async def _await(self, future: concurrent.futures.Future[Any] | None) -> None:
        if future is None:
            return
        waiting = asyncio.wrap_future(future)
        deadline = time.monotonic() + self._wait_s
        while self._courier.online is not False and (left := deadline - time.monotonic()) > 0:
            done, _ = await asyncio.wait({waiting}, timeout=min(left, _WAIT_SLICE))
            if done:
                return

    def _span_of(self, ref: str) -> str | None:
        return self._courier.spans.get(ref)

    def _started(self, ref: str) -> Started | None:
        """The store's answer to the start of `ref`, once delivered."""
        return self._courier.started.get(ref)

    # ---- executions ------------------------------------------------------------------------

    def execution(
        self, task_id: str, *, name: str | None = None, type: str | None = None, trigger: str = "manual",
        scheduled_at: datetime | None = None, retrieval: dict[str, Any] | None = None,
        parents: Iterable[str] = (), causes: Iterable[str] = (), parent: Parent = None,
        retry_of: Parent = None, actor: str | None = None, attributes: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Run:  # fmt: skip
        """One execution, to use as `with` (or `async with`): started on entry, finished on exit."""
        ref = str(uuid.uuid4())
        attempt = retry_of.attempt + 1 if isinstance(retry_of, Run) else 1
        args: dict[str, Any] = {"task_id": task_id, "trigger": trigger, "actor": actor or self.actor}
        args |= {"task_name": name, "task_type": type, "retrieval": retrieval, "attributes": attributes}
        args |= {"parents": list(parents) or None, "causes": list(causes) or None}
        args |= {"parent_span_id": _span_arg(parent), "retry_of": _span_arg(retry_of)}
        if scheduled_at is not None:
            args["scheduled_at"] = iso(scheduled_at)
        args["idempotency_key"] = idempotency_key or _key(task_id, scheduled_at, attempt, ref)
        start = Op("start", {k: v for k, v in args.items() if v is not None}, ref=ref)
        return Run(self, start, task_id=task_id, trace_id=_expected_trace(parent, retry_of), attempt=attempt)

    def retry(
        self, fn: Callable[[], T], task_id: str, *, attempts: int = 3, backoff: float = 0.0,
        retry_on: tuple[type[BaseException], ...] = (Exception,), **execution: Any,
    ) -> T:  # fmt: skip
        """Run `fn` up to `attempts` times, each attempt an execution: same trace, attempt n, retry_of
        the previous one. Returns what `fn` returned; re-raises the last failure."""
        previous: Run | None = None
        for attempt in range(1, attempts + 1):
            run = self.execution(task_id, retry_of=previous, **execution)
            try:
                with run:
                    return fn()
            except retry_on:
                if attempt == attempts:
                    raise
            previous = run
            if backoff:
                time.sleep(backoff * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # pragma: no cover

    async def aretry(
        self, fn: Callable[[], Awaitable[T]], task_id: str, *, attempts: int = 3, backoff: float = 0.0,
        retry_on: tuple[type[BaseException], ...] = (Exception,), **execution: Any,
    ) -> T:  # fmt: skip
        """`retry` for a coroutine function."""
        previous: Run | None = None
        for attempt in range(1, attempts + 1):
            run = self.execution(task_id, retry_of=previous, **execution)
            try:
                async with run:
                    return await fn()
            except retry_on:
                if attempt == attempts:
                    raise
            previous = run
            if backoff:
                await asyncio.sleep(backoff * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def task(
        self, task_id: str | None = None, *, attempts: int = 1, backoff: float = 0.0,
        retry_on: tuple[type[BaseException], ...] = (Exception,), **execution: Any,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:  # fmt: skip
        """Decorate a function (sync or async) so that every call is recorded as an execution
        (`attempts` > 1: retried, each attempt recorded). Inside, `current_run()` is the execution."""

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            name = task_id or fn.__qualname__
            options = {"attempts": attempts, "backoff": backoff, "retry_on": retry_on, **execution}
            if inspect.iscoroutinefunction(fn):

                @functools.wraps(fn)
                async def run_async(*args: Any, **kwargs: Any) -> Any:
                    return await self.aretry(lambda: fn(*args, **kwargs), name, **options)

                return run_async

            @functools.wraps(fn)
            def run_sync(*args: Any, **kwargs: Any) -> Any:
                return self.retry(lambda: fn(*args, **kwargs), name, **options)

            return run_sync

        return decorate

    # ---- events ----------------------------------------------------------------------------

    def event(
        self, event_type: str, task_id: str, *, run: Run | None = None, span_id: str | None = None,
        trace_id: str | None = None, actor: str | None = None, ts: datetime | None = None,
        event_id: str | None = None, **data: Any,
    ) -> str:  # fmt: skip
        """Log one lifecycle event (seed 000's types or a namespaced custom one); returns its event_id.
        Keyword arguments beyond the named ones are the event's data (worker_id, handoff_id, ...)."""
        event_id = event_id or str(uuid.uuid4())
        args: dict[str, Any] = {"event_type": event_type, "task_id": task_id, "event_id": event_id}
        args["ts"] = iso(ts or datetime.now(UTC))
        if run is not None:
            args["span_id"] = ref_arg(run.ref)
        elif span_id is not None:
            args["span_id"] = span_id
        if trace_id is not None:
            args["trace_id"] = trace_id
        if actor or self.actor:
            args["actor"] = actor or self.actor
        if data:
            args["data"] = data
        self._send(Op("event", args))
        return event_id


def _span_arg(relative: Parent) -> dict[str, str] | str | None:
    if isinstance(relative, Run):
        return ref_arg(relative.ref)
    return relative


def _expected_trace(parent: Parent, retry_of: Parent) -> str | None:
    """The run's trace_id as far as known before the store answers. It is never sent: a child joins
    its parent's trace and a retry its first attempt's, and a top-level run takes the one the store
    gives it, which is the task's open trace when the task's events (task_created, task_assigned)
    came first, so the task's whole story is one trace. None until the store answers."""
    relative = parent or retry_of
    return relative.trace_id if isinstance(relative, Run) else None


def _key(task_id: str, scheduled_at: datetime | None, attempt: int, ref: str) -> str:
    """A scheduled run's key is the store's own (task, scheduled time, attempt): running the same
    schedule slot twice records it once. Any other run's key is unique to it."""
    if scheduled_at is not None:
        return derived_idempotency_key(task_id, scheduled_at.astimezone(UTC), attempt)
    return f"recorder:{ref}"


__all__ = ["Recorder", "Run", "TracebackType"]
