"""The examples a newcomer runs against `make serve` work, against a real server on a loopback port."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

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


def run_example(name: str, url: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("TASK_HISTORY_TOKEN", None)
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--url", url], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


async def listed(url: str, **filters: object) -> list[dict[str, object]]:
    async with Client(url) as client:
        result = await client.call_tool("tasks_list", {"limit": 100, **filters})
    return list((result.structured_content or {})["executions"])


def test_the_scheduled_task_example_records_one_success_per_slot(server: LiveServer) -> None:
    assert "recorded daily_reflection" in run_example("scheduled_task.py", server.url)
    run_example("scheduled_task.py", server.url)  # the same hourly slot again (unless the hour just turned)
    runs = asyncio.run(listed(server.url, task_id="daily_reflection"))
    assert 1 <= len(runs) <= 2 and all(r["status"] == "success" for r in runs)


def test_the_retried_task_example_records_two_failures_and_a_success_in_one_trace(server: LiveServer) -> None:
    assert "after 3 attempts" in run_example("retried_task.py", server.url)
    runs = sorted(asyncio.run(listed(server.url, task_id="nightly_ingest")), key=lambda r: r["attempt"])  # type: ignore[arg-type, return-value]
    assert [(r["attempt"], r["status"]) for r in runs] == [(1, "failed"), (2, "failed"), (3, "success")]
    assert len({r["trace_id"] for r in runs}) == 1


def test_the_worker_handoff_example_records_master_worker_and_review(server: LiveServer) -> None:
    out = run_example("worker_handoff.py", server.url)
    task = out.split(":")[0]
    runs = asyncio.run(listed(server.url, task_id=task))
    kinds = sorted((r["worker_id"] or "", r["status"], r["parent_span_id"] is not None) for r in runs)  # type: ignore[operator]
    assert kinds == [("", "success", False), ("", "success", True), ("worker-collect-001", "success", True)]
