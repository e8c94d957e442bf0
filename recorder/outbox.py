"""The outbox: ops not yet delivered, in order, bounded, optionally mirrored to a JSONL spool file.

The spool holds every op taken since the outbox was last empty: appended (and flushed to the OS)
when an op is taken, emptied when the last one is delivered. A process that dies with ops
pending leaves them in the spool, and the next recorder opened on the same spool sends them
first. Some of them may have been delivered already; that is harmless, because every op is
idempotent (store side: idempotency key, same-outcome finish, event_id).

One spool file per recording process: two live recorders on the same file would truncate each
other's pending ops. Used from the courier's event loop only (not thread-safe by itself)."""

from __future__ import annotations

import logging
from collections import deque
from pathlib import Path
from typing import IO

from recorder.ops import Op

log = logging.getLogger("task_history.recorder")


class Outbox:
    def __init__(self, limit: int, spool: Path | None = None) -> None:
        self.limit = limit
        self._ops: deque[Op] = deque()
        self._spool_path = spool
        self._spool: IO[str] | None = None
        self.dropped = 0

    def open(self) -> list[Op]:
        """Load what an earlier process left in the spool; returns those ops (already queued)."""
        if self._spool_path is None:
            return []
        self._spool_path.parent.mkdir(parents=True, exist_ok=True)
        left = self._read_spool()
        kept = left[: self.limit]
        if len(left) > len(kept):
            self.dropped += len(left) - len(kept)
            log.warning(
                "spool %s held %d ops; the oldest %d are queued", self._spool_path, len(left), len(kept)
            )
        self._ops.extend(kept)
        self._spool = self._spool_path.open("a", encoding="utf-8")
        if not left:
            self._truncate()
        return kept

    def _read_spool(self) -> list[Op]:
        assert self._spool_path is not None
        if not self._spool_path.exists():
            return []
        ops = []
        for number, line in enumerate(self._spool_path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                ops.append(Op.from_line(line))
            except ValueError as exc:  # a line cut short by a crash, most likely: skip it, say so
                log.warning("spool %s:%d is unreadable and was skipped (%s)", self._spool_path, number, exc)
        return ops

    def put(self, op: Op) -> bool:
        """Queue `op`; False (and counted as dropped) when the outbox is full."""
        if len(self._ops) >= self.limit:
            self.dropped += 1
            return False
        self._ops.append(op)
        if self._spool is not None:
            self._spool.write(op.to_line() + "\n")
            self._spool.flush()
        return True

    def first(self) -> Op | None:
        return self._ops[0] if self._ops else None

    def done(self, op: Op) -> None:
        """`op` (the first) was delivered or given up; an empty outbox empties the spool."""
        if self._ops and self._ops[0] is op:
            self._ops.popleft()
        if not self._ops:
            self._truncate()

    def _truncate(self) -> None:
        if self._spool is not None:
            self._spool.seek(0)
            self._spool.truncate()
            self._spool.flush()

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    def __len__(self) -> int:
        return len(self._ops)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._ops)
