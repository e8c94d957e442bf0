"""The export format: JSONL whose every line says what it is, so a file can be read back without
being told how it was written (`task-history import` recognizes it by itself).

    {"record": "header", "format": "task-history-export", "version": 1, "exported_at": ..., ...}
    {"record": "execution", "document": {...seed 002 TASK_EXECUTION experience document...}}
    {"record": "event", "event": {...the stored lifecycle event, anomaly and recorded_at included...}}
    {"record": "task", "task": {...the stored task state, notes and bookkeeping included...}}
    {"record": "footer", "counts": {"executions": n, "events": n, "tasks": n}}

Executions travel as experience documents (store.experience), which carry every field of the
record; events and task rows travel as stored, so importing an export into an empty store gives
back the same executions, events and task states. Prune archives (store.retention) use the same
records, so an archive imports like an export."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from store.errors import InvalidInput
from store.experience import from_document, to_document
from store.models import Execution, LifecycleEvent
from store.records import Page, StoredTask
from store.store import Store
from store.timeutil import iso_z, now_utc

FORMAT = "task-history-export"
VERSION = 1
RECORD_KINDS = ("header", "execution", "event", "task", "footer")

ExportItem = Execution | LifecycleEvent | StoredTask


def dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def header(since: datetime | None, until: datetime | None) -> dict[str, Any]:
    return {
        "record": "header", "format": FORMAT, "version": VERSION, "exported_at": iso_z(now_utc()),
        "since": iso_z(since) if since else None, "until": iso_z(until) if until else None,
    }  # fmt: skip


def record_of(item: ExportItem) -> dict[str, Any]:
    if isinstance(item, Execution):
        return {"record": "execution", "document": to_document(item)}
    if isinstance(item, StoredTask):
        return {"record": "task", "task": item.model_dump(mode="json")}
    return {"record": "event", "event": item.model_dump(mode="json")}


def is_export_record(obj: object) -> bool:
    return isinstance(obj, dict) and obj.get("record") in RECORD_KINDS


def parse_record(obj: dict[str, Any]) -> ExportItem | None:
    """The item an export line carries (None for the header and footer); InvalidInput when malformed."""
    kind = obj.get("record")
    if kind in ("header", "footer"):
        if kind == "header" and (obj.get("format") != FORMAT or obj.get("version") != VERSION):
            raise InvalidInput("header", f"is {obj.get('format')!r} version {obj.get('version')!r}; "
                               f"this store reads {FORMAT!r} version {VERSION}")  # fmt: skip
        return None
    try:
        if kind == "execution":
            return from_document(obj["document"])  # keeps the document's own backfilled flag
        if kind == "event":
            return LifecycleEvent.model_validate(obj["event"])
        if kind == "task":
            return StoredTask.model_validate(obj["task"])
    except KeyError as exc:
        raise InvalidInput(str(kind), f"record has no {exc.args[0]!r}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidInput(f"{kind}.{where}", first["msg"]) from exc
    raise InvalidInput("record", f"{kind!r} is not one of {', '.join(RECORD_KINDS)}")


@dataclass
class ExportCounts:
    executions: int = 0
    events: int = 0
    tasks: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"executions": self.executions, "events": self.events, "tasks": self.tasks}


async def export_history(
    store: Store,
    write: Callable[[str], None],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> ExportCounts:
    """Write the header, every execution and event in [since, until), the tasks they belong to,
    and the footer, one JSON line each; returns how many of each were written."""
    counts = ExportCounts()

    def emit(item: ExportItem) -> None:
        write(dumps(record_of(item)))
        if progress is not None:
            progress(1)

    write(dumps(header(since, until)))
    window = {"since": since, "until": until}
    # One snapshot for all three scans: read one after another while a server wrote, the task rows
    # named runs started after the executions were read, which the file then lacked.
    async with store.history_snapshot() as snap:
        counts.executions = await _drain(lambda after: snap.scan_executions(after=after, **window), 0, emit)
        counts.events = await _drain(lambda after: snap.scan_events(after=after, **window), 0, emit)
        counts.tasks = await _drain(lambda after: snap.scan_tasks(after=after, **window), "", emit)
    write(dumps({"record": "footer", "counts": counts.as_dict()}))
    return counts


async def _drain(
    scan: Callable[[Any], Awaitable[Page[Any]]], start: int | str, emit: Callable[[Any], None]
) -> int:
    """Emit every item of a full keyset scan, page by page; how many there were."""
    emitted = 0
    after: int | str | None = start
    while after is not None:
        page = await scan(after)
        for item in page.items:
            emit(item)
        emitted += len(page.items)
        after = page.after
    return emitted
