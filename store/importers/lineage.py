"""Seed 000's lineage log: one JSON event per line (`task-lineage.jsonl` and its daily archives
`lineage-YYYY-MM-DD.jsonl`), in the shape of `task-lineage.schema.json`:

    {"lineage_id": "lineage-1732731600003", "task_id": "task-001", "event_type": "worker_spawned",
     "timestamp": "2025-11-27T12:00:10Z", "actor": {"type": "master", "id": "security-master"},
     "event_data": {"worker_id": "worker-scan-001", "worker_type": "scan-worker"},
     "parent_lineage_id": "lineage-1732731600002", "context": {"session_id": "session-001"}, ...}

Each line becomes one `log_event` call, so the events do what they would have done live (open and
close executions, move the task's state). The mapping:

* `actor.id` (or a plain string actor) -> actor; `timestamp` -> ts (no zone: UTC);
* `event_data` -> data, with the schema's names translated to the store's where they differ:
  `error_details {error_type, error_message, stack_trace}` -> `error {type, message, stack}`,
  `completion_status` -> `status` (so task_completed can say partial), `master_id` -> `assigned_to`;
* everything else of the line (lineage_id, parent_lineage_id, related_task_ids, context, tags,
  version, actor type and principal) is kept under `data.lineage`;
* `context.trace_id` becomes the event's trace when it is a UUIDv4;
* the event_id is a hash of the whole line, so importing it again (or from a daily archive that
  repeats the main log) is a duplicate, never a second event. Pure."""

from __future__ import annotations

import json
from typing import Any

from store.ids import is_uuid4
from store.importers.items import content_id, parse_time
from store.models import EventRequest

_KEPT = ("lineage_id", "parent_lineage_id", "related_task_ids", "context", "tags", "version")


def is_lineage_line(obj: object) -> bool:
    return isinstance(obj, dict) and "event_type" in obj and "task_id" in obj


def lineage_event(obj: dict[str, Any]) -> EventRequest:
    """The event one lineage line describes; ValueError (or pydantic's) naming what is wrong."""
    for required in ("event_type", "task_id", "timestamp"):
        if required not in obj or obj[required] in (None, ""):
            raise ValueError(f"the line has no {required}")
    actor, lineage = _actor(obj.get("actor"))
    lineage.update({key: obj[key] for key in _KEPT if key in obj})
    data = _data(obj.get("event_data"))
    if lineage:
        data["lineage"] = lineage
    trace = (obj.get("context") or {}).get("trace_id") if isinstance(obj.get("context"), dict) else None
    return EventRequest(
        event_type=str(obj["event_type"]), task_id=str(obj["task_id"]), actor=actor, data=data,
        ts=parse_time(obj["timestamp"], "timestamp"), event_id=content_id("lineage", obj), backfilled=True,
        trace_id=trace.lower() if isinstance(trace, str) and is_uuid4(trace.lower()) else None,
    )  # fmt: skip


def _actor(raw: object) -> tuple[str | None, dict[str, Any]]:
    if isinstance(raw, dict):
        extra = {f"actor_{k}": v for k, v in raw.items() if k != "id"}
        return (str(raw["id"]) if raw.get("id") else None), extra
    return (str(raw) if raw else None), {}


def _data(raw: object) -> dict[str, Any]:
    if isinstance(raw, str):  # the shell library passes event_data as a JSON string
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError:
            return {"text": raw}
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        return {"value": raw}
    data = dict(raw)
    details = data.get("error_details")
    if isinstance(details, dict) and "error" not in data:
        error = {
            "type": details.get("error_type") or "UnspecifiedError",
            "message": details.get("error_message") or data.get("reason") or "no message",
        }
        if details.get("stack_trace"):
            error["stack"] = details["stack_trace"]
        data["error"] = error
    if "completion_status" in data and "status" not in data:
        data["status"] = data["completion_status"]
    if "master_id" in data and "assigned_to" not in data:
        data["assigned_to"] = data["master_id"]
    return data
