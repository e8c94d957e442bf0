"""The examples a newcomer runs against `make serve` work, against a real server on a loopback port."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from live_server import LiveServer
from mcp import Client

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path_factory.mktemp("examples") / "history.db").start()
    yield live
    live.stop()


def run_example(name: str, url: str, *options: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("TASK_HISTORY_TOKEN", None)
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--url", url, *options], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def printed_trace(out: str) -> str:
    """The trace an example printed (`..., trace <trace_id>`)."""
    match = re.search(r"\btrace ([0-9a-f-]{36})\b", out)
    assert match, out
    return match.group(1)


async def by_trace(url: str, trace_id: str) -> dict[str, Any]:
    async with Client(url) as client:
        result = await client.call_tool("tasks_by_trace", {"trace_id": trace_id})
    assert not result.is_error, result.content
    return dict(result.structured_content or {})


async def listed(url: str, **filters: object) -> list[dict[str, object]]:
    async with Client(url) as client:
        result = await client.call_tool("tasks_list", {"limit": 100, **filters})
    return list((result.structured_content or {})["executions"])


def test_the_scheduled_task_example_records_one_success_per_slot(server: LiveServer) -> None:
    slot = ("--slot", "2025-11-04T18:00:00Z")
    first = run_example("scheduled_task.py", server.url, *slot)
    again = run_example("scheduled_task.py", server.url, *slot)  # the same slot again
    assert "recorded daily_reflection for 2025-11-04 18:00Z: success" in first
    assert "already recorded" not in first and "(this slot was already recorded)" in again
    (run,) = asyncio.run(listed(server.url, task_id="daily_reflection"))
    assert run["status"] == "success"
    assert printed_trace(first) == printed_trace(again) == run["trace_id"]
    trace = asyncio.run(by_trace(server.url, printed_trace(again)))
    assert trace["found"] and [e["span_id"] for e in trace["executions"]] == [run["span_id"]]


def test_the_retried_task_example_records_two_failures_and_a_success_in_one_trace(server: LiveServer) -> None:
    out = run_example("retried_task.py", server.url)
    assert "after 3 attempts" in out
    runs = sorted(asyncio.run(listed(server.url, task_id="nightly_ingest")), key=lambda r: r["attempt"])  # type: ignore[arg-type, return-value]
    assert [(r["attempt"], r["status"]) for r in runs] == [(1, "failed"), (2, "failed"), (3, "success")]
    assert len({r["trace_id"] for r in runs}) == 1
    trace = asyncio.run(by_trace(server.url, printed_trace(out)))
    assert trace["found"] and {e["span_id"] for e in trace["executions"]} == {r["span_id"] for r in runs}


def test_the_worker_handoff_example_records_master_worker_and_review(server: LiveServer) -> None:
    out = run_example("worker_handoff.py", server.url)
    task = out.split(":")[0]
    runs = asyncio.run(listed(server.url, task_id=task))
    kinds = sorted((r["worker_id"] or "", r["status"], r["parent_span_id"] is not None) for r in runs)  # type: ignore[operator]
    assert kinds == [("", "success", False), ("", "success", True), ("worker-collect-001", "success", True)]
    trace = asyncio.run(by_trace(server.url, printed_trace(out)))
    assert trace["found"] and {e["span_id"] for e in trace["executions"]} == {r["span_id"] for r in runs}


def test_the_worker_handoff_example_tells_the_whole_task_story_in_one_trace(server: LiveServer) -> None:
    """task_created and task_assigned come before any execution: the task's first event opens its
    trace, and the master run (which the recorder starts without a trace_id) must join it."""
    out = run_example("worker_handoff.py", server.url)
    task = out.split(":")[0]
    runs = asyncio.run(listed(server.url, task_id=task))
    assert {r["trace_id"] for r in runs} == {printed_trace(out)}
    trace = asyncio.run(by_trace(server.url, printed_trace(out)))
    assert [e["event_type"] for e in trace["events"]] == [
        "task_created", "task_assigned", "worker_spawned", "worker_progress", "worker_completed",
        "handoff_created", "handoff_accepted", "handoff_completed",
    ]  # fmt: skip
    assert {e["span_id"] for e in trace["executions"]} == {r["span_id"] for r in runs}
