"""Identifiers of the execution record (seed 002): UUIDv4 trace/span ids, execution ids,
session ids and the derived idempotency key. Pure functions, no I/O."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import datetime

from store.errors import InvalidInput
from store.models import INT64_MAX
from store.timeutil import iso_z

_UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
_SLUG_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def new_uuid4() -> str:
    return str(uuid.uuid4())


def is_uuid4(value: str) -> bool:
    return bool(_UUID4.match(value))


def require_uuid4(field: str, value: str | None) -> str:
    """Return `value` lower-cased if it is a UUIDv4, a fresh one if it is None."""
    if value is None:
        return new_uuid4()
    lowered = value.strip().lower()
    if not is_uuid4(lowered):
        raise InvalidInput(
            field,
            f"{value!r} is not a UUIDv4",
            hint="Pass a version-4 UUID such as 550e8400-e29b-41d4-a716-446655440000, or omit it to "
            "have one generated.",
        )
    return lowered


def slugify(task_id: str) -> str:
    return _SLUG_UNSAFE.sub("_", task_id).strip("_").lower() or "task"


def execution_id(task_id: str, started_at: datetime, span_id: str) -> str:
    """`task_exec_{task_id}_{timestamp}_{short_uuid}` as seed 002 names it."""
    d = started_at
    if d.year >= 1000:  # what strftime's %Y%m%dT%H%M%S gives, for a fraction of its cost
        stamp = f"{d.year}{d.month:02}{d.day:02}T{d.hour:02}{d.minute:02}{d.second:02}Z"
    else:
        stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    return f"task_exec_{slugify(task_id)}_{stamp}_{span_id[:8]}"


def session_id(task_id: str, started_at: datetime, span_id: str) -> str:
    """`task:{task_id}:{exec_ts_iso}:{short_uuid}` as seed 002 names it."""
    return f"task:{task_id}:{iso_z(started_at, seconds=True)}:{span_id[:4]}"


def derived_idempotency_key(task_id: str, scheduled_at: datetime, attempt: int) -> str:
    """sha256(task_id + scheduled_at + attempt): the same scheduled run recorded twice is one run."""
    material = f"{task_id}|{iso_z(scheduled_at)}|{attempt}"
    return hashlib.sha256(material.encode()).hexdigest()


def recorded_idempotency_key(task_id: str, started_at: datetime, retry_of: str | None) -> str:
    """For an after-the-fact record with no key: the same task started at the same instant is one run."""
    material = f"recorded|{task_id}|{iso_z(started_at)}|{retry_of or ''}"
    return hashlib.sha256(material.encode()).hexdigest()


def cursor_int(value: object) -> int:
    """A number a cursor carries, as this server writes them: a JSON integer a 64-bit column
    holds. A float, a bool or a larger number is no cursor of ours (ValueError)."""
    if type(value) is not int or not -INT64_MAX - 1 <= value <= INT64_MAX:
        raise ValueError(f"not a cursor position: {value!r}")
    return value
