"""Helpers and scenarios shared by the in-memory tool tests (tests/server) and the end-to-end tests
(tests/e2e), so both transports are driven through exactly the same calls."""

from __future__ import annotations

import base64
import json
from typing import Any

from mcp import Client

T0 = "2025-11-04T18:29:12Z"
LONG = "x" * 70_000  # over the default max_text_chars (65,536) yet far under the 1 MiB HTTP body limit

NESTED_40: dict[str, Any] = {}
_inner = NESTED_40
for _ in range(39):  # 40 levels of objects, past rules.MAX_DATA_DEPTH
    _inner["a"] = _inner = {}


def forged_cursor(numbers: list[Any]) -> str:
    """A cursor-shaped token (numbers, then a digest) that this server did not issue."""
    return base64.urlsafe_b64encode(json.dumps([*numbers, "0123456789"]).encode()).decode().rstrip("=")


# The bad-input table: (tool, arguments, fragments the error text must contain).
BAD_CALLS: list[tuple[str, dict[str, Any], list[str]]] = [
    ("tasks_list", {"limit": 0}, ["limit", "greater than or equal to 1", "raise it"]),
    ("tasks_list", {"limit": 10**9}, ["limit", "less than or equal to 100", "lower it"]),
    ("tasks_list", {"limit": "many"}, ["limit", "integer"]),
    ("tasks_list", {"cursor": "garbage!"}, ["cursor", "next_cursor"]),
    ("tasks_list", {"since": "2025-11-04T18:29:12"}, ["since", "timezone", "2025-11-04T18:29:12Z"]),
    ("tasks_list", {"since": "2025-02-30T00:00:00Z"}, ["since", "day value is outside", "ISO 8601"]),
    ("tasks_list", {"since": "1970-01-01T00:00:00+01:00"}, ["since", "got 1969-12-31T23:00:00+00:00"]),
    ("tasks_list", {"until": "last tuesday"}, ["until", "ISO 8601"]),
    ("tasks_list", {"status": "exploded"}, ["status", "'success'"]),
    *(
        (
            tool,
            {**args, "since": "2025-11-05T00:00:00Z", "until": "2025-11-04T00:00:00Z"},
            ["until", "before since"],
        )
        for tool, args in [
            ("tasks_list", {}),
            ("tasks_last_failed", {}),
            ("tasks_failure_patterns", {}),
            ("tasks_stats", {}),
            ("tasks_side_effects", {"file": "a"}),
        ]
    ),
    ("tasks_list", {"colour": "red"}, ["unknown argument", "colour", "Accepted arguments"]),
    ("tasks_last_failed", {"limit": 51}, ["limit", "less than or equal to 50"]),
    ("tasks_get", {"span_id": "no-such-span"}, ["no execution", "no-such-span", "tasks_list"]),
    ("tasks_get", {}, ["span_id", "Field required", "add it"]),
    ("tasks_by_trace", {"trace_id": ""}, ["trace_id", "at least 1 character"]),
    ("tasks_by_trace", {"trace_id": "   "}, ["trace_id", "is blank", "tasks_list"]),
    ("tasks_start", {}, ["task_id", "Field required"]),
    ("tasks_start", {"task_id": 42}, ["task_id", "string"]),
    ("tasks_start", {"task_id": "t", "trace_id": "not-a-uuid"}, ["trace_id", "UUIDv4"]),
    ("tasks_start", {"task_id": "t", "started_at": "2025-11-04T18:29:12"}, ["started_at", "timezone"]),
    ("tasks_start", {"task_id": "t", "started_at": "3025-01-01T00:00:00Z"}, ["started_at", "3025"]),
    ("tasks_start", {"task_id": "t", "retry_of": "no-such-span"}, ["retry_of", "no-such-span"]),
    (
        "tasks_start",
        {"task_id": "t", "retrieval": {"memory_count": 2}, "parents": ["a"]},
        ["parents", "memory_count"],
    ),
    ("tasks_start", {"task_id": "t", "retrieval": {"bogus": 1}}, ["retrieval.bogus", "remove it"]),
    ("tasks_start", {"task_id": "bad\ud800"}, ["task_id", "not valid Unicode", "UTF-8"]),
    (
        "tasks_start",
        {"task_id": "t", "attributes": {"note": ["ok", "bad\udfff"]}},
        ["attributes.note[1]", "UTF-8"],
    ),
    ("tasks_start", {"task_id": "t\x00"}, ["task_id", "control characters"]),
    # NUL in text: refused alike on both engines (PostgreSQL cannot hold it), naming the field.
    ("tasks_start", {"task_id": "t", "task_name": "a\x00b"}, ["task_name", "NUL character", "U+FFFD"]),
    ("tasks_start", {"task_id": "t", "idempotency_key": "k\x00"}, ["idempotency_key", "NUL character"]),
    (
        "tasks_record",
        {"task_id": "t", "started_at": T0, "status": "success", "result": "out\x00put"},
        ["result", "NUL character"],
    ),
    (
        "tasks_record",
        {"task_id": "t", "started_at": T0, "status": "success", "io": {"files_written": ["a\x00"]}},
        ["io.files_written", "NUL character"],
    ),
    (
        "tasks_log_event",
        {"event_type": "task_failed", "task_id": "t", "data": {"error": {"type": "E", "message": "m\x00"}}},
        ["data.error.message", "NUL character"],
    ),
    ("tasks_by_trace", {"trace_id": "x\x00y"}, ["trace_id", "NUL character"]),
    ("tasks_timeline", {"trace_id": "x\x00y"}, ["trace_id", "NUL character"]),
    ("tasks_side_effects", {"file": "a\x00b"}, ["file", "NUL character"]),
    ("tasks_side_effects", {"tool_call": "a\x00b"}, ["tool_call", "NUL character"]),
    ("tasks_finish", {"span_id": "no-such-span", "status": "success"}, ["no execution", "no-such-span"]),
    ("tasks_finish", {"span_id": "s", "status": "done"}, ["status", "'success'"]),
    ("tasks_log_event", {"event_type": "exploded", "task_id": "t"}, ["event_type", "task_created", "myorg."]),
    ("tasks_log_event", {"event_type": "worker_spawned", "task_id": "t"}, ["data.worker_id", "worker_id"]),
    (
        "tasks_log_event",
        {"event_type": "task_created", "task_id": "t", "ts": "yesterday"},
        ["ts", "ISO 8601"],
    ),
    ("tasks_record", {"task_id": "t", "started_at": T0, "status": "failed"}, ["error", "error.type"]),
    (
        "tasks_record",
        {"task_id": "t", "status": "success", "started_at": T0, "ended_at": "2025-11-04T18:29:11Z"},
        ["ended_at", "before"],
    ),
    (
        "tasks_record",
        {"task_id": "t", "started_at": T0, "status": "success", "result": LONG},
        ["result", "70000", "max_text_chars"],
    ),
    (
        "tasks_record",
        {"task_id": "t", "started_at": T0, "status": "success", "attributes": {"blob": LONG}},
        ["attributes", "max_data_bytes"],
    ),
    (
        "tasks_record",
        {"task_id": "t", "started_at": T0, "status": "success", "parents": ["p"] * 1001},
        ["parents", "max_list_items"],
    ),
    ("tasks_record", {"task_id": "t", "status": "success"}, ["started_at", "Field required"]),
    # More tokens than one run may record (a trillion), and JSON too deep to read back (NaN and
    # Infinity: the SDK client sends them as null; tests/e2e/test_e2e_broken_text.py sends them raw).
    (
        "tasks_record",
        {"task_id": "t", "started_at": T0, "status": "success", "usage": {"input_tokens": 2**62 + 1}},
        ["usage.input_tokens", "at most 1,000,000,000,000"],
    ),
    (
        "tasks_record",
        {"task_id": "t", "started_at": T0, "status": "success", "usage": {"cost": 1e308}},
        ["usage.cost", "at most 1,000,000,000,000"],
    ),
    (
        "tasks_record",
        {"task_id": "t", "started_at": T0, "status": "success", "usage": {"input_tokens": 2**63}},
        ["usage.input_tokens", "less than or equal to 9223372036854775807"],
    ),
    (
        "tasks_record",
        {"task_id": "t", "started_at": T0, "status": "success", "attributes": NESTED_40},
        ["attributes.a.a", "deeper than 32 levels", "Flatten"],
    ),
    ("tasks_log_event", {"event_type": "task_created", "task_id": "t", "data": NESTED_40}, ["data.a"]),
    (
        "tasks_record",
        {"task_id": "t", "started_at": T0, "status": "success", "error": {"type": "E", "message": "m"}},
        ["error", "successful execution", "status failed"],
    ),
    # An event filed under a span or trace no execution could have.
    (
        "tasks_log_event",
        {"event_type": "task_blocked", "task_id": "t", "span_id": "nope"},
        ["span_id", "UUIDv4"],
    ),
    (
        "tasks_log_event",
        {"event_type": "task_blocked", "task_id": "t", "trace_id": "nope"},
        ["trace_id", "UUIDv4"],
    ),
    (
        "tasks_log_event",
        {"event_type": "task_completed", "task_id": "t", "data": {"status": "failed"}},
        ["data.status", "success or partial", "task_failed"],
    ),
    (
        "tasks_log_event",
        {"event_type": "worker_spawned", "task_id": "t", "data": {"worker_id": 5}},
        ["data.worker_id", "int 5, not a string"],
    ),
    # Cursors with numbers this server never writes: an infinity, a float, one past 64 bits.
    *(
        ("tasks_list", {"cursor": forged_cursor(numbers)}, ["cursor", "not a cursor this server issued"])
        for numbers in ([1e400, 5], [1.5, 5], [10**30, 5])
    ),
    ("tasks_last_failed", {"cursor": forged_cursor([10**30, 5])}, ["cursor", "not a cursor"]),
    ("tasks_failure_patterns", {"cursor": forged_cursor([1e400])}, ["cursor", "not a cursor"]),
    ("tasks_timeline", {"task_id": "t", "cursor": forged_cursor([1, 10**30, 1])}, ["cursor", "not a cursor"]),
    ("tasks_side_effects", {"file": "a", "cursor": forged_cursor([10**30, 5])}, ["cursor", "not a cursor"]),
    ("tasks_nonexistent", {}, ["Unknown tool", "offers: tasks_list"]),
]

SEED_TASK = "task-001"
WORKER = "worker-scan-001"
HANDOFF = "handoff-001"

# Seed 000's lifecycle, in order: (event_type, actor, data).
SEED_000_WALK: list[tuple[str, str, dict[str, Any]]] = [
    ("task_created", "user-ryan", {"priority": "high"}),
    ("task_assigned", "coordinator-master", {"assigned_to": "security-master", "priority": "high"}),
    ("task_started", "security-master", {}),
    ("worker_spawned", "security-master", {"worker_id": WORKER, "worker_type": "scan-worker"}),
    ("worker_started", WORKER, {"worker_id": WORKER, "worker_type": "scan-worker"}),
    ("worker_progress", WORKER, {"worker_id": WORKER, "progress": 50}),
    ("worker_completed", WORKER, {"worker_id": WORKER, "result": "scan clean"}),
    ("handoff_created", "security-master", {"handoff_id": HANDOFF, "to_master": "development-master"}),
    ("handoff_accepted", "development-master", {"handoff_id": HANDOFF}),
    ("handoff_completed", "development-master", {"handoff_id": HANDOFF}),
    ("task_completed", "security-master", {"status": "success", "deliverables": ["report.json"]}),
]


async def ok(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call `tool`, insist it succeeded, return its structured content."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content[0].text
    assert result.structured_content is not None
    return result.structured_content


async def text_of(client: Client, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content[0].text
    return result.content[0].text


async def fails(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    """Call `tool`, insist it was a tool error, return the error text."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool}({arguments!r}) unexpectedly succeeded: {result.content[0].text}"
    return result.content[0].text


async def assert_readable_error(
    client: Client, tool: str, arguments: dict[str, Any], fragments: list[str]
) -> None:
    """The call is a tool error whose text names the problem (every fragment) in a few lines."""
    text = await fails(client, tool, arguments)
    for fragment in fragments:
        assert fragment.lower() in text.lower(), f"{fragment!r} missing from: {text}"
    assert "Error executing tool" not in text  # never the SDK's opaque crash text
    assert len(text) < 2000  # a huge argument is not echoed back


async def count_executions(client: Client, **filters: Any) -> int:
    page = await ok(client, "tasks_list", limit=1, **filters)
    assert page["total_exact"]
    return int(page["total"])


async def walk_seed_000(client: Client) -> str:
    """Log seed 000's task-001 lifecycle; returns the trace_id the task's execution got."""
    trace_id = None
    for event_type, actor, data in SEED_000_WALK:
        logged = await ok(
            client, "tasks_log_event", event_type=event_type, task_id=SEED_TASK, actor=actor, data=data
        )
        assert logged["anomaly"] is None, (event_type, logged["anomaly"])
        trace_id = trace_id or logged["task"]["current_trace_id"]
    assert trace_id is not None
    return trace_id


async def check_seed_000_trace(client: Client, trace_id: str) -> None:
    """The trace holds the task's execution, the worker's child execution under it, and the events."""
    trace = await ok(client, "tasks_by_trace", trace_id=trace_id)
    assert trace["found"] and trace["final_status"] == "success"
    by_worker = {e["worker_id"]: e for e in trace["executions"]}
    task_run, worker_run = by_worker[None], by_worker[WORKER]
    assert task_run["task_id"] == SEED_TASK and task_run["status"] == "success"
    assert worker_run["status"] == "success" and worker_run["parent_span_id"] == task_run["span_id"]
    assert [event["event_type"] for event in trace["events"]] == [event for event, _, _ in SEED_000_WALK]


async def fail_once(client: Client, task_id: str, message: str = "boom", **start: Any) -> dict[str, Any]:
    """Start and fail one execution of `task_id`; returns the finish answer."""
    started = await ok(client, "tasks_start", task_id=task_id, **start)
    error = {"type": "TimeoutError", "message": message, "stack": 'File "job.py", line 3, in run'}
    return await ok(client, "tasks_finish", span_id=started["span_id"], status="failed", error=error)
