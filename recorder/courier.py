"""The courier: a background thread with its own event loop that takes ops from the outbox and
delivers them, in order, through a transport.

The agent's threads (or event loops) never wait on the network unless they ask to: `submit`
queues an op and returns a future that is settled when the op was delivered or given up. While
the store is unreachable the courier retries with exponential backoff (0.1 s doubling to
`backoff_max`); `flush` skips the wait and tries at once. Every op goes through one task, so the
transport (and the MCP client's task group inside it) lives and dies in that one task."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from recorder.ops import Op, Unresolved
from recorder.outbox import Outbox
from recorder.transports import Refused, Started, Transport, Unreachable

log = logging.getLogger("task_history.recorder")
T = TypeVar("T")
Outcome = Literal["delivered", "refused", "dropped"]
BACKOFF_START = 0.1


@dataclass(frozen=True)
class Delivery:
    """How an op ended: delivered (a start: with the store's answer), refused (why), or dropped."""

    outcome: Outcome
    started: Started | None = None
    reason: str | None = None

    @property
    def span_id(self) -> str | None:
        return self.started.span_id if self.started else None


class Courier:
    def __init__(self, transport: Transport, outbox: Outbox, *, backoff_max: float = 5.0) -> None:
        self._transport = transport
        self._outbox = outbox
        self._backoff_max = backoff_max
        self.spans: dict[str, str | None] = {}  # ref -> span_id (None: its start was refused)
        self.started: dict[str, Started] = {}  # ref -> the store's answer to its start
        self.online: bool | None = None  # None until the first attempt
        self.refused: list[str] = []
        self._futures: dict[str, concurrent.futures.Future[Delivery]] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="task-history-recorder", daemon=True
        )
        self._wake: asyncio.Event | None = None  # new work: ends an idle wait
        self._hurry: asyncio.Event | None = None  # flush or close: also ends a backoff wait
        self._closing = False
        self._worker: asyncio.Task[None] | None = None

    # ---- lifecycle (any thread) ------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        self.call(self._begin())

    async def _begin(self) -> None:
        self._wake, self._hurry = asyncio.Event(), asyncio.Event()
        for op in self._outbox.open():
            self._futures[op.op_id] = concurrent.futures.Future()
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="task-history-courier")

    def close(self, timeout: float) -> int:
        """Deliver what can be within `timeout`, stop; returns how many ops are left undelivered."""
        self.flush(timeout)
        left = self.call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        return left

    async def _stop(self) -> int:
        self._closing = True
        self._nudge(hurry=True)
        if self._worker is not None:
            await self._worker
        left = len(self._outbox)
        self._outbox.close()
        return left

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # ---- the agent's side (any thread) -----------------------------------------------------

    def submit(self, op: Op) -> concurrent.futures.Future[Delivery]:
        return self.call(self._submit(op))

    async def _submit(self, op: Op) -> concurrent.futures.Future[Delivery]:
        future: concurrent.futures.Future[Delivery] = concurrent.futures.Future()
        op.bind(self.spans)
        if not self._outbox.put(op):
            log.warning(
                "the recorder's buffer is full (%d ops); a %s was dropped", self._outbox.limit, op.tool
            )
            future.set_result(Delivery("dropped", reason="buffer full"))
            return future
        self._futures[op.op_id] = future
        self._nudge()
        return future

    def flush(self, timeout: float) -> bool:
        """Try to deliver everything queued now, at once; True when the outbox emptied in time."""
        last = self.call(self._last_future())
        if last is None:
            return True
        try:
            last.result(timeout)
        except concurrent.futures.TimeoutError:
            return False
        return self.pending == 0 or self.call(self._empty())

    async def _last_future(self) -> concurrent.futures.Future[Delivery] | None:
        self._nudge(hurry=True)
        last = None
        for op in self._outbox:
            last = self._futures.get(op.op_id)
        return last

    async def _empty(self) -> bool:
        return len(self._outbox) == 0

    @property
    def pending(self) -> int:
        return len(self._outbox)

    @property
    def dropped(self) -> int:
        return self._outbox.dropped

    def _nudge(self, *, hurry: bool = False) -> None:
        if self._wake is not None and self._hurry is not None:
            self._wake.set()
            if hurry:
                self._hurry.set()

    # ---- the courier's loop ----------------------------------------------------------------

    async def _run(self) -> None:
        backoff = BACKOFF_START
        # Connect now, not at the first record: the first run's start waits for its delivery, and a
        # connection made then (the SDK's import, the handshake: ~1 s cold) went into its duration.
        connected = await self._connect()
        try:
            while True:
                op = self._outbox.first()
                if op is None:
                    if self._closing:
                        return
                    await self._sleep(None)
                    continue
                if not connected:
                    connected = await self._connect()
                if connected and await self._deliver(op):
                    backoff = BACKOFF_START
                    continue
                connected = False
                if self._closing:
                    return
                await self._sleep(backoff)
                backoff = min(backoff * 2, self._backoff_max)
        finally:
            await self._transport.close()

    async def _connect(self) -> bool:
        try:
            await self._transport.open()
        except Unreachable as exc:
            self._went_offline(str(exc))
            return False
        if self.online is None:  # a reconnection is announced by the first delivery after it
            self.online = True
        return True

    async def _deliver(self, op: Op) -> bool:
        """True when the op is done with (delivered, refused or unresolvable); False: unreachable."""
        try:
            args = op.resolved(self.spans)
        except Unresolved as missing:
            self._settle(op, Delivery("dropped", reason=f"its execution {missing.ref} was never recorded"))
            return True
        try:
            started = await self._transport.deliver(op, args)
        except Unreachable as exc:
            await self._transport.close()
            self._went_offline(str(exc))
            return False
        except Refused as exc:
            log.warning("task-history refused a %s: %s", op.tool, exc)
            self.refused.append(f"{op.tool}: {exc}")
            if op.ref is not None:
                self.spans[op.ref] = None
            self._settle(op, Delivery("refused", reason=str(exc)))
            return True
        if self.online is False:
            log.warning("task-history is reachable again; delivering %d buffered records", len(self._outbox))
        self.online = True
        if op.ref is not None and started is not None:
            self.started[op.ref] = started
            self.spans[op.ref] = started.span_id
        self._settle(op, Delivery("delivered", started=started))
        return True

    def _settle(self, op: Op, delivery: Delivery) -> None:
        self._outbox.done(op)
        future = self._futures.pop(op.op_id, None)
        if future is not None and not future.done():
            future.set_result(delivery)

    def _went_offline(self, why: str) -> None:
        if self.online is not False:
            log.warning("task-history is unreachable (%s); buffering records and retrying", why)
        self.online = False

    async def _sleep(self, seconds: float | None) -> None:
        """Idle (None): until new work. Backoff: `seconds`, or until someone flushes or closes."""
        assert self._wake is not None and self._hurry is not None
        event = self._wake if seconds is None else self._hurry
        if seconds is not None and event.is_set():
            event.clear()
            return
        event.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)
