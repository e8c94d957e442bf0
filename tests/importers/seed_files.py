"""Sample files in the shapes of the seeds: a seed 000 lineage log (task-lineage.schema.json lines),
a seed 004 task-breakdown.json and seed 002 experience documents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TASK = "task-security-scan-001"


def lineage(event_type: str, ts: str, actor: str, n: int, **data: Any) -> dict[str, Any]:
    return {
        "lineage_id": f"lineage-17327316000{n:02d}", "task_id": TASK, "event_type": event_type,
        "timestamp": ts, "actor": {"type": "master", "id": actor}, "event_data": data,
        "context": {"session_id": "session-001", "repository": "cortex"}, "version": "1.0.0",
    }  # fmt: skip


DAY_ONE = [
    lineage("task_created", "2025-11-27T12:00:00Z", "user-ryan", 1, priority="high"),
    lineage("task_assigned", "2025-11-27T12:00:05Z", "coordinator-master", 2, master_id="security-master"),
    lineage("task_started", "2025-11-27T12:00:06Z", "security-master", 3),
    lineage("worker_spawned", "2025-11-27T12:00:10Z", "security-master", 4, worker_id="worker-scan-001",
            worker_type="scan-worker"),
]  # fmt: skip
DAY_TWO = [
    lineage("worker_failed", "2025-11-28T09:00:00Z", "worker-scan-001", 5, worker_id="worker-scan-001",
            error_details={"error_type": "TimeoutError", "error_message": "scanner timed out",
                           "stack_trace": "Traceback...\nTimeoutError: scanner timed out"}),
    lineage("task_completed", "2025-11-28T09:05:00Z", "security-master", 6, completion_status="partial",
            deliverables=["report.json"]),
]  # fmt: skip


def write_jsonl(path: Path, records: list[Any], *, extra_lines: list[str] = ()) -> Path:  # type: ignore[assignment]
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(r) for r in records] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_lineage_folder(folder: Path) -> Path:
    """Two daily archives and the main log, which repeats the last archive's lines."""
    write_jsonl(folder / "lineage-2025-11-27.jsonl", DAY_ONE)
    write_jsonl(folder / "lineage-2025-11-28.jsonl", DAY_TWO)
    write_jsonl(folder / "task-lineage.jsonl", DAY_TWO)
    return folder


def breakdown(**changes: Any) -> dict[str, Any]:
    """Seed 004's example, with three tasks in three states."""
    tasks = [
        {
            "id": "T1", "description": "Implement authentication module", "module": "auth-service",
            "priority": 1, "dependencies": [], "estimated_complexity": "medium", "status": "completed",
            "started_at": "2025-10-31T23:46:10", "completed_at": "2025-10-31T23:46:45",
            "result": "Created auth module with JWT support", "attempts": 1,
            "notes": [
                {"timestamp": "2025-10-31T23:46:10", "note": "Starting implementation"},
                {"timestamp": "2025-10-31T23:46:45", "note": "All tests passing"},
            ],
        },
        {
            "id": "T2", "description": "Create models", "module": "auth-service", "priority": 2,
            "dependencies": ["T1"], "status": "in_progress", "started_at": "2025-10-31T23:47:00",
            "completed_at": None, "result": None, "attempts": 2, "notes": [],
        },
        {
            "id": "T3", "description": "Write docs", "priority": 3, "dependencies": ["T2"],
            "status": "pending", "started_at": None, "completed_at": None, "result": None, "attempts": 0,
            "notes": [],
        },
    ]  # fmt: skip
    for task in tasks:
        task.update(changes.get(task["id"], {}))
    return {"generated_at": "2025-10-31T23:46:04", "total_tasks": len(tasks), "tasks": tasks}


def document(n: int, **structured: Any) -> dict[str, Any]:
    """A seed 002 experience document as another system would have written it."""
    span = f"{n:08x}-e29b-41d4-a716-446655440000"
    fields: dict[str, Any] = {
        "schema_version": 1, "task_id": "daily_reflection", "task_slug": "daily_reflection",
        "task_name": "Daily Self-Reflection", "task_type": "reflection", "scheduled_vs_manual": "scheduled",
        "status": "success", "started_at_iso": "2025-11-04T18:29:12Z", "ended_at_iso": "2025-11-04T18:29:13Z",
        "started_at_ts": 1762280952.123, "ended_at_ts": 1762280953.165, "duration_ms": 1042,
        "trace_id": "550e8400-e29b-41d4-a716-446655440000", "span_id": span, "attempt": 1, "retry_of": None,
        "idempotency_key": f"key-{n}", "retrieval": {"memory_count": 2, "query": "what happened today",
        "filters": {"type": "OBSERVATION"}, "latency_ms": 28, "source": ["experiences"]},
        "io": {"files_written": ["path/to/file.json"], "artifact_ids": [], "tool_calls": []},
        "error": None,
    }  # fmt: skip
    fields.update(structured)
    return {
        "id": f"task_exec_daily_reflection_20251104T182912Z_{span[:8]}", "type": "TASK_EXECUTION",
        "content": {"text": "Reflected on the day; wrote to ops@example.com", "structured": fields},
        "provenance": {"actor": "AGENT", "method": "SCHEDULED_TASK", "sources": []},
        "parents": ["exp_123", "exp_456"], "causes": [], "session_id": f"task:daily_reflection:x:{n}",
        "created_at": "2025-11-04T18:29:12Z", "ts": 1762280952.123, "meta": {"scrubbed": False},
    }  # fmt: skip
