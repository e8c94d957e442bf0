"""MCP resources: one execution and one trace as attachable JSON documents, so a client can attach
a record instead of pasting it (and a reader can fetch the whole text a tool answer clipped).

    task-history://execution/{span_id}   the seed 002 experience document and the execution's events
    task-history://trace/{trace_id}      every execution of the trace (as documents) and its events
    task-history://event/{event_id}      one lifecycle event with its whole data (a clipped event's
                                         data names it, even for an event in no trace or span)

A resource is read on purpose, so it is not cut to a token budget; only a trace is bounded (its
first TRACE_MAX_EXECUTIONS executions and TRACE_MAX_EVENTS events), and says so when it is.
An unknown id is a resource-not-found error naming the tool that lists real ones.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError

from server.budget import compact_json
from server.results import EVENT_URI, EXECUTION_URI, TRACE_URI
from server.toolkit import store_of
from store.errors import NotFound, StoreError
from store.experience import to_document

TRACE_MAX_EXECUTIONS = 200
TRACE_MAX_EVENTS = 2_000
MIME = "application/json"
T = TypeVar("T")


async def _looked_up(lookup: Awaitable[T], missing: str) -> T:
    """What `lookup` found; a resource-not-found error saying `missing` when it found nothing."""
    try:
        return await lookup
    except NotFound as error:
        raise ResourceNotFoundError(missing) from error
    except StoreError as error:
        raise ResourceError(str(error)) from error


async def execution_resource(span_id: str, ctx: Context) -> str:
    """The execution as its seed 002 TASK_EXECUTION document, with its lifecycle events."""
    record = await _looked_up(
        store_of(ctx).get(span_id),
        f"No execution with span_id {span_id}; tasks_list and tasks_last_failed show span_ids.",
    )
    events = [e.model_dump(mode="json") for e in record.events]
    return compact_json({"document": to_document(record.execution), "events": events})


async def trace_resource(trace_id: str, ctx: Context) -> str:
    """Every execution of the trace (documents, by attempt) and its events, in time order."""
    try:
        view = await store_of(ctx).trace(trace_id)
    except StoreError as error:
        raise ResourceError(str(error)) from error
    if not view.found:
        raise ResourceNotFoundError(
            f"Nothing is recorded under trace_id {trace_id}; tasks_list and tasks_last_failed show trace_ids."
        )
    runs, events = view.executions[:TRACE_MAX_EXECUTIONS], view.events[:TRACE_MAX_EVENTS]
    body: dict[str, Any] = {
        "trace_id": view.trace_id,
        "final_status": view.final_status,
        "retry_count": view.retry_count,
        "executions": [to_document(e) for e in runs],
        "events": [e.model_dump(mode="json") for e in events],
        "executions_total": len(view.executions),
        "events_total": len(view.events),
        "truncated": len(runs) < len(view.executions) or len(events) < len(view.events),
    }
    if body["truncated"]:
        body["rest"] = "tasks_by_trace(trace_id, cursor=...) pages through all of it."
    return compact_json(body)


async def event_resource(event_id: str, ctx: Context) -> str:
    """One lifecycle event as recorded, its data whole."""
    event = await _looked_up(
        store_of(ctx).event(event_id),
        f"No event with event_id {event_id}; tasks_by_trace and tasks_get show event_ids.",
    )
    return compact_json(event.model_dump(mode="json"))


def register_resources(server: MCPServer[Any]) -> None:
    server.resource(
        EXECUTION_URI,
        name="execution",
        title="One execution",
        mime_type=MIME,
        description="One execution in full (seed 002 document with stack and result) and its events.",
    )(execution_resource)
    server.resource(
        TRACE_URI,
        name="trace",
        title="One trace",
        mime_type=MIME,
        description="Every execution (attempts, workers) and event recorded under one trace.",
    )(trace_resource)
    server.resource(
        EVENT_URI,
        name="event",
        title="One event",
        mime_type=MIME,
        description="One lifecycle event with its whole data (answers clip long event data).",
    )(event_resource)
