"""Lifecycle rules: the 18 event types of seed 000, what each does to a task's state
(seed 004) and to its executions, and what counts as an anomaly. Pure: the storage layer
asks these functions what to do and then does it.

Events drive executions: task_started opens the task's execution, worker_spawned /
worker_started open a child execution under the task's trace, and the completed / failed /
cancelled events close them. Nothing well-formed is refused: a surprising event is kept and
flagged with an anomaly sentence instead."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

from store.errors import InvalidInput
from store.ids import require_uuid4
from store.models import ErrorInput, FinalStatus, TaskState

LIFECYCLE_EVENT_TYPES: tuple[str, ...] = (
    "task_created", "task_assigned", "task_started",
    "worker_spawned", "worker_started", "worker_progress", "worker_completed", "worker_failed",
    "task_completed", "task_failed", "task_blocked", "task_unblocked", "task_reassigned",
    "task_escalated", "task_cancelled", "handoff_created", "handoff_accepted", "handoff_completed",
)  # fmt: skip

_CUSTOM_TYPE = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)+$")
TERMINAL_STATES: frozenset[TaskState] = frozenset({"completed", "failed", "cancelled"})
TERMINAL_EVENTS: frozenset[str] = frozenset({"task_completed", "task_failed", "task_cancelled"})
MAX_NOTES = 50


class Effect(Enum):
    """What an event does to executions."""

    NONE = "none"
    OPEN_TASK = "open_task"
    OPEN_WORKER = "open_worker"
    CLOSE_TASK = "close_task"
    CLOSE_WORKER = "close_worker"
    TOUCH_WORKER = "touch_worker"


_EFFECTS: dict[str, Effect] = {
    "task_started": Effect.OPEN_TASK,
    "worker_spawned": Effect.OPEN_WORKER,
    "worker_started": Effect.OPEN_WORKER,
    "worker_progress": Effect.TOUCH_WORKER,
    "worker_completed": Effect.CLOSE_WORKER,
    "worker_failed": Effect.CLOSE_WORKER,
    "task_completed": Effect.CLOSE_TASK,
    "task_failed": Effect.CLOSE_TASK,
    "task_cancelled": Effect.CLOSE_TASK,
}

_STATE_AFTER: dict[str, TaskState] = {
    "task_created": "pending",
    "task_assigned": "assigned",
    "task_started": "in_progress",
    "task_completed": "completed",
    "task_failed": "failed",
    "task_cancelled": "cancelled",
    "task_blocked": "blocked",
    "task_reassigned": "assigned",
    "task_escalated": "escalated",
}

_FIELD_REQUIRED: dict[str, str] = {
    "worker_spawned": "worker_id",
    "worker_started": "worker_id",
    "worker_progress": "worker_id",
    "worker_completed": "worker_id",
    "worker_failed": "worker_id",
    "handoff_created": "handoff_id",
    "handoff_accepted": "handoff_id",
    "handoff_completed": "handoff_id",
}


def is_custom_type(event_type: str) -> bool:
    return bool(_CUSTOM_TYPE.match(event_type))


def check_event(event_type: str, data: dict[str, Any]) -> None:
    """Refuse an unknown type or a worker/handoff event that does not say which one."""
    if event_type not in LIFECYCLE_EVENT_TYPES and not is_custom_type(event_type):
        raise InvalidInput(
            "event_type",
            f"{event_type!r} is not a lifecycle event type",
            hint=f"Use one of {', '.join(LIFECYCLE_EVENT_TYPES)}, "
            "or a namespaced custom type such as 'myorg.deploy_finished'.",
        )
    required = _FIELD_REQUIRED.get(event_type)
    if required and not _nonempty_str(data.get(required)):
        given = data.get(required)
        problem = "" if given is None else f" (got {type(given).__name__} {given!r}, not a string)"
        raise InvalidInput(
            f"data.{required}",
            f"a {event_type} event must name its {required.removesuffix('_id')}{problem}",
            hint=f'Add "{required}": "<id>" to data.',
        )
    if event_type in _CLOSES_WITH_STATUS and data.get("status", "success") not in ("success", "partial"):
        raise InvalidInput(
            "data.status",
            f"is {data['status']!r}; a {event_type} event closes its run as success or partial",
            hint=f'Send "partial" for a run that did part of its work, or omit it; for a failure send '
            f"{event_type.replace('completed', 'failed')} with data.error.",
        )


_CLOSES_WITH_STATUS = frozenset({"task_completed", "worker_completed"})
"""Events whose data.status may say partial (close_status)."""


def check_references(span_id: str | None, trace_id: str | None) -> None:
    """An event's span_id and trace_id name an execution and a trace: UUIDv4s, as the store makes
    them. Anything else would file the event under a trace or span no execution has."""
    for field, value in (("span_id", span_id), ("trace_id", trace_id)):
        if value is not None:
            require_uuid4(field, value)


def effect_of(event_type: str) -> Effect:
    return _EFFECTS.get(event_type, Effect.NONE)


def close_status(event_type: str, data: dict[str, Any]) -> FinalStatus:
    """The execution status a closing event implies; task_completed may say partial."""
    if event_type in ("task_failed", "worker_failed"):
        return "failed"
    if event_type == "task_cancelled":
        return "cancelled"
    return "partial" if data.get("status") == "partial" else "success"


def error_from_event(event_type: str, data: dict[str, Any]) -> tuple[ErrorInput, str | None]:
    """The failure's error from `data.error`; a placeholder and an anomaly when it is missing."""
    raw = data.get("error")
    if isinstance(raw, dict) and _nonempty_str(raw.get("type")) and _nonempty_str(raw.get("message")):
        stack = raw.get("stack")
        return ErrorInput(
            type=raw["type"], message=raw["message"], stack=stack if _nonempty_str(stack) else None
        ), None
    if isinstance(raw, str) and raw.strip():
        return ErrorInput(type="UnspecifiedError", message=raw), f"{event_type} gave its error as plain text"
    reason = data.get("reason")
    message = reason if _nonempty_str(reason) else f"{event_type} without error details"
    return ErrorInput(
        type="UnspecifiedError", message=message
    ), f"{event_type} carried no data.error {{type, message}}"


@dataclass(frozen=True)
class StateChange:
    state: TaskState
    anomaly: str | None = None


def next_state(current: TaskState | None, event_type: str, *, has_running: bool) -> StateChange:
    """The task's state after an in-order event, with an anomaly when the step is surprising."""
    if current is None:
        current = "pending"
    anomaly = _surprise(current, event_type, has_running=has_running)
    if event_type == "task_unblocked":
        return StateChange("in_progress" if has_running else "pending", anomaly)
    if keeps_outcome(current, event_type):
        return StateChange(current, anomaly)
    return StateChange(_STATE_AFTER.get(event_type, current), anomaly)


def keeps_outcome(current: TaskState | None, event_type: str) -> bool:
    """A second outcome does not replace the first: only a new task_started begins a new run."""
    return current in TERMINAL_STATES and event_type in TERMINAL_EVENTS


def _surprise(current: TaskState, event_type: str, *, has_running: bool) -> str | None:
    if event_type == "task_unblocked" and current != "blocked":
        return f"task_unblocked while the task was {current}, not blocked"
    if event_type == "task_started" and has_running:
        return "task_started while an execution of this task is still running"
    if keeps_outcome(current, event_type):
        return f"{event_type} after the task was already {current}; the first outcome stands"
    if (
        current in TERMINAL_STATES
        and event_type not in ("task_started", "task_created")
        and not is_custom_type(event_type)
    ):
        return f"{event_type} after the task was already {current}"
    return None


def note_from(data: dict[str, Any]) -> str | None:
    """A human note carried by an event (`note`, `notes` or `reason`), for the task's notes."""
    for key in ("note", "notes", "reason"):
        value = data.get(key)
        if _nonempty_str(value):
            return str(value)
    return None


# Events that hand the task to someone, and where their data names who (else the event's actor):
# an accepted handoff moves the task to the master that accepted it (seed 000's cross-master handoff).
_ASSIGNEE_KEYS: dict[str, tuple[str, ...]] = {
    "task_assigned": ("assigned_to", "to", "assignee", "to_master"),
    "task_reassigned": ("assigned_to", "to", "assignee", "to_master"),
    "handoff_accepted": ("accepted_by", "to_master", "to", "assigned_to"),
}


def assignee_from(event_type: str, data: dict[str, Any], actor: str | None) -> str | None:
    keys = _ASSIGNEE_KEYS.get(event_type)
    if keys is None:
        return None
    for key in keys:
        if _nonempty_str(data.get(key)):
            return str(data[key])
    return actor


def _nonempty_str(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())
