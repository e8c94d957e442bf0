"""What the format readers produce: `Item`s (one write each, with where it came from) and
`Problem`s (a malformed line or file, with its location), plus the deterministic ids that make
a re-import a no-op. Pure."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from store.models import EventRequest, Execution, LifecycleEvent
from store.records import IdKind, StoredTask

ItemKind = Literal["event", "execution", "raw_event", "first_event", "task"]
Payload = EventRequest | Execution | LifecycleEvent | StoredTask


@dataclass(frozen=True)
class Item:
    """One record to write. `event` goes through log_event (its effects applied, as if it had been
    logged live); `raw_event` and `task` are stored exactly as given; `first_event` too, but only
    for a task the store has no row of yet (a breakdown's task_created: a later snapshot of the same
    file must not create the task again); `execution` is a whole record."""

    where: str
    kind: ItemKind
    payload: Payload

    @property
    def identity(self) -> tuple[IdKind, str]:
        """The stored key that tells whether this record is already there."""
        p = self.payload
        if isinstance(p, Execution):
            return "span", p.span_id
        if isinstance(p, StoredTask):
            return "task", p.task_id
        assert isinstance(p, EventRequest | LifecycleEvent)
        return "event", str(p.event_id)

    @property
    def label(self) -> str:
        p = self.payload
        if isinstance(p, Execution):
            return f"execution {p.task_id} attempt {p.attempt} ({p.status}) span_id={p.span_id}"
        if isinstance(p, StoredTask):
            return f"task {p.task_id} ({p.state}, {p.attempts} attempts)"
        assert isinstance(p, EventRequest | LifecycleEvent)
        when = p.ts.isoformat() if p.ts else "now"
        return f"event {p.event_type} of {p.task_id} at {when} event_id={p.event_id}"


@dataclass(frozen=True)
class Problem:
    """A line, file or entry that could not be read; it is skipped and the rest goes in."""

    where: str
    message: str


def stable_uuid4(*parts: object) -> str:
    """A UUIDv4-shaped id that is the same for the same parts (the store wants v4 trace/span ids)."""
    digest = bytearray(hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x40
    digest[8] = (digest[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(digest)))


def content_id(prefix: str, obj: Any) -> str:
    """An id from a record's whole content: the same line in two files (a main log and its
    daily archive) is the same event."""
    canonical = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return f"{prefix}-{hashlib.sha256(canonical.encode()).hexdigest()[:40]}"


def parse_time(value: object, field: str) -> datetime:
    """An ISO 8601 time; a time without a zone is read as UTC (the files of seeds 000/004 are)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{field} is missing or not a timestamp ({value!r})")
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{field} {value!r} is not an ISO 8601 time") from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def maybe_time(value: object, field: str) -> datetime | None:
    return None if value in (None, "") else parse_time(value, field)
