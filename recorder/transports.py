"""The two ways a recorder reaches the store, with one interface:

* `DirectTransport`: the `Store` itself, in process, on a database file (or URL);
* `RemoteTransport`: a running task-history server over MCP streamable HTTP (the SDK's `Client`),
  with an optional bearer token.

`deliver` returns what the store made of a start (`Started`: its span_id, trace_id and attempt,
which are the first execution's when the start repeats an idempotency key), and raises
`Unreachable` when the store could not be reached (the op waits and is tried again) or `Refused`
when the store answered no (the op is dropped with a warning: sending it again would get the same
answer)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any, Protocol

from recorder.ops import Op

# Tool-error texts that mean "the database is busy or away", not "this record is wrong" (server.errors).
_TRANSIENT_MARKERS = (
    "busy or unreachable",
    "could not commit",
    "stayed locked",
    "store is closed",
    "did not answer",
)


@dataclass(frozen=True)
class Started:
    """The store's answer to a start: the execution it opened, or the one it already had."""

    span_id: str
    trace_id: str
    attempt: int
    duplicate: bool = False


class Unreachable(Exception):
    """The store could not be reached or did not answer; try again later."""


class Refused(Exception):
    """The store answered, and refused the op (the text says why)."""


class Transport(Protocol):
    async def open(self) -> None: ...

    async def deliver(self, op: Op, args: dict[str, Any]) -> Started | None: ...

    async def close(self) -> None: ...


class DirectTransport:
    """The store in this process, through `Store` (store/ never learns about the recorder)."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._store: Any = None

    async def open(self) -> None:
        from store.errors import StoreError
        from store.store import Store

        try:
            self._store = await Store.open(self._url)
        except StoreError as exc:
            raise Unreachable(str(exc)) from exc

    async def deliver(self, op: Op, args: dict[str, Any]) -> Started | None:
        from pydantic import ValidationError

        from store.errors import StoreError, StoreUnavailable
        from store.models import EventRequest, FinishRequest, StartRequest

        try:
            if op.kind == "start":
                started = await self._store.start(StartRequest(**args, span_id=op.ref))
                e = started.execution
                return Started(str(e.span_id), str(e.trace_id), e.attempt, started.duplicate)
            if op.kind == "finish":
                await self._store.finish(FinishRequest(**args))
            else:
                await self._store.log_event(EventRequest(**args))
        except StoreUnavailable as exc:
            raise Unreachable(str(exc)) from exc
        except (StoreError, ValidationError) as exc:
            raise Refused(str(exc)) from exc
        return None

    async def close(self) -> None:
        if self._store is not None:
            store, self._store = self._store, None
            await store.close()


class RemoteTransport:
    """A task-history server's tools over streamable HTTP.

    The SDK client lives in a task of its own (`_connection`) that serves calls from a queue: when
    the server goes away, the client's task group cancels the task that hosts it, and that must be
    this disposable task, not the courier. A call whose connection dies, or that gets no answer
    within `timeout`, is Unreachable; the next `open` starts a fresh connection."""

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 10.0) -> None:
        self._url, self._token, self._timeout = url, token, timeout
        self._calls: asyncio.Queue[tuple[str, dict[str, Any], asyncio.Future[Any]] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self._calls = asyncio.Queue()
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.get_running_loop().create_task(self._connection(ready), name="task-history-mcp")
        done, _ = await asyncio.wait(
            {ready, self._task}, timeout=self._timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if ready not in done or ready.exception() is not None:
            await self.close()
            why = ready.exception() if ready.done() else f"no answer within {self._timeout} s"
            raise Unreachable(f"{self._url} did not answer ({why})")

    async def _connection(self, ready: asyncio.Future[None]) -> None:
        import httpx2
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        headers = {"Authorization": f"Bearer {self._token}"} if self._token else None
        try:
            async with httpx2.AsyncClient(headers=headers, timeout=self._timeout) as http:
                transport = streamable_http_client(self._url, http_client=http)
                async with Client(transport, read_timeout_seconds=self._timeout) as client:
                    ready.set_result(None)
                    while (call := await self._calls.get()) is not None:
                        tool, args, answer = call
                        result = await client.call_tool(tool, args)
                        if not answer.done():
                            answer.set_result(result)
        except Exception as exc:
            if not ready.done():
                ready.set_exception(Unreachable(_first_cause(exc)))

    async def deliver(self, op: Op, args: dict[str, Any]) -> Started | None:
        if self._task is None or self._task.done():
            raise Unreachable(f"no connection to {self._url}")
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls.put_nowait((op.tool, args, answer))
        done, _ = await asyncio.wait(
            {answer, self._task}, timeout=self._timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if answer not in done:
            answer.cancel()
            raise Unreachable(f"{self._url} stopped answering")
        result = answer.result()
        if result.is_error:
            text = " ".join(getattr(block, "text", "") for block in result.content)
            raise (Unreachable if any(m in text for m in _TRANSIENT_MARKERS) else Refused)(text)
        if op.kind != "start":
            return None
        s = result.structured_content or {}
        return Started(str(s["span_id"]), str(s["trace_id"]), int(s["attempt"]), bool(s.get("duplicate")))

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is None or task.done():
            return
        self._calls.put_nowait(None)
        done, _ = await asyncio.wait({task}, timeout=self._timeout)
        if not done:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


def _first_cause(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"
