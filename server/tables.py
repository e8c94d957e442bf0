"""Terminal tables for the CLI's read commands (`task-history list|trace|last-failed|get`).

They show the same result models the MCP tools return, laid out for a developer's terminal rather than
for a model's context window; `--json` prints the models' structured content instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from server.render import clip, counted, duration, plural, table, when
from server.results import (
    ErrorPatternSummary,
    EventSummary,
    ExecutionDocument,
    ExecutionList,
    ExecutionSummary,
    LastFailedResult,
    ToolResult,
    TraceResult,
    age,
)
from store.analysis import IO_FIELDS

_EXECUTION_HEADERS = ("STARTED", "STATUS", "TASK", "TRY", "DURATION", "SPAN_ID", "ERROR")
_EVENT_HEADERS = ("TIME", "EVENT", "TASK", "ACTOR", "NOTE")


def _execution_row(e: ExecutionSummary) -> list[str]:
    task = e.task_id if e.worker_id is None else f"{e.task_id}/{e.worker_id}"
    error = f"{e.error.type}: {clip(e.error.message, 60)}" if e.error else ""
    return [
        when(e.started_at),
        e.status,
        clip(task, 40),
        str(e.attempt),
        _duration_or_age(e),
        e.span_id,
        error,
    ]


def _duration_or_age(e: ExecutionSummary) -> str:
    """A run with no end recorded shows how long ago it started: "running" alone would claim the
    process is alive, which the store cannot know (it may have been killed)."""
    if e.status != "running" or e.duration_ms is not None:
        return duration(e.duration_ms)
    return f"no end, {age(datetime.now(UTC) - e.started_at)}"


def _event_row(ev: EventSummary) -> list[str]:
    note = f"anomaly: {ev.anomaly}" if ev.anomaly else ""
    return [when(ev.ts), ev.event_type, clip(ev.task_id, 30), ev.actor or "", clip(note, 70)]


def _pattern_row(p: ErrorPatternSummary) -> list[str]:
    error = clip(f"{p.error_type}: {p.error_message}", 60)
    return [str(p.count), p.stack_hash[:12], when(p.last_seen), p.example_trace_id, error]


def executions_table(rows: Sequence[ExecutionSummary]) -> str:
    return table(_EXECUTION_HEADERS, [_execution_row(e) for e in rows])


def events_table(rows: Sequence[EventSummary]) -> str:
    return table(_EVENT_HEADERS, [_event_row(ev) for ev in rows])


def list_view(result: ExecutionList) -> str:
    if not result.executions:
        return "No executions match these filters."
    total = counted(result.total, result.total_exact)
    foot = f"{result.returned} of {total} matching executions, newest first."
    if result.has_more:
        foot += f"\nNext page: add --cursor {result.next_cursor}"
    return f"{executions_table(result.executions)}\n\n{foot}"


def trace_view(result: TraceResult) -> str:
    if not result.found:
        return result.render()
    head = (
        f"Trace {result.trace_id}: final status {result.final_status or 'unknown'}, "
        f"{plural(result.retry_count, 'retry', 'retries')}"
    )
    parts = [head, "", executions_table(result.executions)]
    if result.events:
        parts += ["", events_table(result.events)]
    return "\n".join(parts)


def last_failed_view(result: LastFailedResult) -> str:
    if not result.failures:
        return "No failed executions in this window."
    parts = [executions_table(result.failures), ""]
    foot = f"{len(result.failures)} most recent of {plural(result.total_failures, 'failure')}."
    if result.has_more and result.next_cursor:
        foot += f"\nOlder failures: add --cursor {result.next_cursor}"
    parts.append(foot)
    patterns = [_pattern_row(p) for p in result.error_patterns]
    parts += ["", table(("COUNT", "STACK", "LAST SEEN", "EXAMPLE TRACE_ID", "ERROR"), patterns)]
    return "\n".join(parts)


def document_view(result: ExecutionDocument) -> str:
    s = result.document["content"]["structured"]
    keys = ("task_id", "task_name", "status", "attempt", "started_at_iso", "ended_at_iso", "duration_ms")
    keys += ("trace_id", "span_id", "parent_span_id", "retry_of", "actor", "worker_id")
    lines = [f"{key:>15}: {s.get(key)}" for key in keys if s.get(key) is not None]
    if s.get("error"):
        lines.append(f"{'error':>15}: {s['error']['type']}: {s['error']['message']}")
        lines.append(f"{'stack_hash':>15}: {s['error']['stack_hash']}")
    lines.append(f"{'id':>15}: {result.document['id']}")
    io = s.get("io") or {}
    lines += [f"{name:>15}: {', '.join(io[name])}" for name in IO_FIELDS.values() if io.get(name)]
    usage = {k: v for k, v in (s.get("usage") or {}).items() if v is not None}
    if usage:
        lines.append(f"{'usage':>15}: {', '.join(f'{k} {v}' for k, v in usage.items())}")
    for title, text in (("stack", (s.get("error") or {}).get("stack")), ("result", s.get("result"))):
        if text:
            lines += ["", f"{title}:", text]
    if result.clipped_fields:
        span = s["span_id"]
        lines += [
            "",
            f"Clipped: {', '.join(sorted(result.clipped_fields))}. The whole record: task-history export "
            f"(JSONL), or the resource task-history://execution/{span} in an MCP client.",
        ]
    if result.events:
        lines += ["", events_table(result.events)]
    return "\n".join(lines)


def terminal_view(result: ToolResult) -> str:
    """The terminal layout for a read command's result (the short rendering for anything else)."""
    if isinstance(result, ExecutionList):
        return list_view(result)
    if isinstance(result, TraceResult):
        return trace_view(result)
    if isinstance(result, LastFailedResult):
        return last_failed_view(result)
    if isinstance(result, ExecutionDocument):
        return document_view(result)
    return result.render()
