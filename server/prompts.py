"""MCP prompts: `debug_recent_failures`, a walk a model can follow through the read tools, from
"what is failing" to one failure's whole story and back to the task's history.

A bad prompts/get (an unknown prompt, an argument it does not take, a `since` that is not a time) is
refused by `check_prompt_call` as INVALID_PARAMS with a text that says how to fix it, before the SDK
renders anything: left to the SDK, the handshake era answered with code 0 and the 2026-07-28 era with
an opaque internal error, and a bad `since` went into the walk as a call that would then fail."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from pydantic import Field, TypeAdapter, ValidationError

from store.models import Identifier, Timestamp

TaskArg = Annotated[str | None, Field(description="only this task_id (default: every task)")]
SinceArg = Annotated[
    str | None, Field(description="window start, ISO 8601 with offset, e.g. 2025-11-04T00:00:00Z")
]


def debug_recent_failures(task_id: TaskArg = None, since: SinceArg = None) -> str:
    """Walk through recent failures: tasks_last_failed -> tasks_failure_patterns -> tasks_by_trace ->
    tasks_list for one task, then report the cause, scope and whether retries fix it."""
    scope = "".join([f", task_id={task_id!r}" if task_id else "", f", since={since!r}" if since else ""])
    return WALK.format(
        about=f" of task {task_id}" if task_id else "",
        window=f" since {since}" if since else "",
        scope=scope,
        bare_scope=scope.lstrip(", "),
        since=f", since={since!r}" if since else "",
    )


# One paragraph per line: a model reads the steps as a list.
WALK = (
    "Find out what has been failing{about}{window} in task-history and why. Use the task-history tools "
    'in this order, and keep answers small (detail="summary" unless you need more):\n\n'
    '1. tasks_last_failed(limit=10{scope}, detail="summary"): the latest failures and their error '
    "patterns. Note the error types, the tasks and the trace_ids.\n"
    "2. tasks_failure_patterns({bare_scope}): failures grouped by fingerprint (error type + normalized "
    "message + stack_hash). Pick the group that matters most: the largest count, a rising trend, a "
    "recent first_seen (new), or fixed_by_retry = 0 (retries do not help).\n"
    "3. tasks_by_trace(trace_id=<that group's example.trace_id>): the whole story of one failure: every "
    "attempt, worker and event in order. tasks_get(span_id) shows one execution in full, stack "
    "included; tasks_timeline(trace_id=...) shows the gaps between steps.\n"
    '4. tasks_list(task_id=<the most affected task>{since}, detail="summary"), then the same with '
    'status="failed": how often it runs and fails, and since when. tasks_stats(task_id=<it>) gives its '
    "success rate, duration percentiles and retry rate.\n\n"
    "Whenever an answer says truncated=true, read its `rest` field before concluding: it names the "
    "cursor or the call that gets what was left out.\n\n"
    "Report: the failure that matters most (error type and normalized message), how many failures and "
    "tasks it affects and since when, whether retries fix it, one example trace_id, and the most likely "
    "cause with the evidence for it."
)


# Each prompt's arguments and the type each must satisfy.
PROMPT_ARGUMENTS: dict[str, dict[str, TypeAdapter[Any]]] = {
    "debug_recent_failures": {"task_id": TypeAdapter(Identifier), "since": TypeAdapter(Timestamp)},
}


def check_prompt_call(name: str, arguments: Mapping[str, Any] | None) -> None:
    """Refuse a prompts/get that could only fail or mislead, naming what to change."""
    accepted = PROMPT_ARGUMENTS.get(name)
    if accepted is None:
        offered = ", ".join(PROMPT_ARGUMENTS)
        raise MCPError(INVALID_PARAMS, f"Unknown prompt {name!r}. This server offers: {offered}.")
    for key, value in (arguments or {}).items():
        if key not in accepted:
            raise MCPError(
                INVALID_PARAMS,
                f"Prompt {name} takes no argument {key!r}; it takes: {', '.join(accepted)} (all optional).",
            )
        try:
            accepted[key].validate_python(value)
        except ValidationError as error:
            problem = error.errors()[0]["msg"]
            raise MCPError(
                INVALID_PARAMS, f"Prompt {name}: argument {key} is invalid ({problem}); {_ARG_HINTS[key]}."
            ) from None


_ARG_HINTS = {
    "task_id": "pass a task_id as tasks_list shows it, or leave it out for every task",
    "since": "pass an ISO 8601 time with offset, e.g. 2025-11-04T00:00:00Z, or leave it out",
}


def register_prompts(server: MCPServer[Any]) -> None:
    # The description is given cleaned: the SDK would pass the docstring's indentation through.
    description = inspect.cleandoc(debug_recent_failures.__doc__ or "").replace("\n", " ")
    server.prompt(title="Debug recent failures", description=description)(debug_recent_failures)
