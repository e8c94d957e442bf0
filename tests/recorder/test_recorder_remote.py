"""The recorder through a real server over MCP: the same records as in process, a bearer token,
an outage (records buffered in memory and in a spool file, delivered once the server is back on
the same port, without duplicates), a bounded buffer, and an agent killed mid-run."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from live_server import LiveServer
from mcp import Client

from recorder import Recorder

REPO = Path(__file__).resolve().parents[2]
AGENT = Path(__file__).with_name("agent_killed.py")


@pytest.fixture
def server(db_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(db_path).start()
    yield live
    live.stop()


async def call(url: str, tool: str, **arguments: Any) -> dict[str, Any]:
    async with Client(url) as client:
        result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    return result.structured_content or {}


def listed(url: str, **filters: Any) -> list[dict[str, Any]]:
    return list(asyncio.run(call(url, "tasks_list", limit=100, **filters))["executions"])


def test_a_remote_recorder_writes_the_same_records(server: LiveServer) -> None:
    with Recorder.remote(server.url, actor="remote-agent") as rec:
        with rec.execution("remote-task", name="Remote", type="custom") as run:
            run.add_files("out.json")
            run.event("worker_spawned", worker_id="w-1")
            run.event("worker_completed", worker_id="w-1")
        with pytest.raises(ZeroDivisionError), rec.execution("remote-task", retry_of=run):
            _ = 1 / 0
        assert rec.flush(10) and rec.refused == []
        assert run.span_id is not None
    runs = {(r["worker_id"], r["attempt"]): r for r in listed(server.url, task_id="remote-task")}
    assert runs[(None, 1)]["status"] == "success"
    failed = runs[(None, 2)]
    assert (failed["status"], failed["error"]["type"], failed["trace_id"]) == (
        "failed", "ZeroDivisionError", runs[(None, 1)]["trace_id"],
    )  # fmt: skip
    assert runs[("w-1", 1)]["status"] == "success"


def test_the_recorder_connects_before_its_first_record_so_no_run_pays_for_it(server: LiveServer) -> None:
    """The connection (the SDK's import and handshake, ~1 s cold) was made on the first run's start,
    which the run waits for, so the first recorded duration held it."""
    with Recorder.remote(server.url) as rec:
        assert wait_until(lambda: rec._courier.online is True, timeout=30), "never connected"
        with rec.execution("eager") as run:
            pass
        assert rec.flush(10) and run.span_id is not None


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)  # polling a condition with a deadline, not a sleep standing in for one
    return True


def test_a_duplicate_remote_start_takes_the_trace_the_server_answers(server: LiveServer) -> None:
    slot = datetime(2025, 11, 4, 18, 0, tzinfo=UTC)
    with Recorder.remote(server.url) as rec:
        for _ in range(2):  # the same schedule slot, run twice
            with rec.execution("daily", trigger="scheduled", scheduled_at=slot) as run:
                pass
        assert rec.flush(10) and rec.refused == []
        assert run.duplicate and run.attempt == 1
    (stored,) = listed(server.url, task_id="daily")
    assert (run.span_id, run.trace_id) == (stored["span_id"], stored["trace_id"])
    trace = asyncio.run(call(server.url, "tasks_by_trace", trace_id=run.trace_id))
    assert trace["found"] and [e["span_id"] for e in trace["executions"]] == [stored["span_id"]]


def test_a_token_protected_server_takes_records_with_the_token_only(db_path: Path) -> None:
    live = LiveServer(db_path, token="s3cret-token").start()
    try:
        with Recorder.remote(live.url, token="s3cret-token") as good, good.execution("with-token"):
            pass
        bad = Recorder.remote(live.url, token="wrong", wait=0.2)
        with bad.execution("wrong-token"):
            pass
        assert bad.online is False and bad.pending == 2  # kept: a 401 is retried like an outage
        bad.close(timeout=0.2)
    finally:
        live.stop()
    with Recorder.direct(db_path) as rec, rec.execution("check"):
        pass

    async def names() -> set[str]:
        from store import Store
        from store.models import ExecutionFilter

        async with await Store.open(str(db_path)) as store:
            return {e.task_id for e in (await store.list_executions(ExecutionFilter())).executions}

    assert asyncio.run(names()) == {"with-token", "check"}


def test_records_made_while_the_server_is_down_are_delivered_once_it_is_back(server: LiveServer) -> None:
    rec = Recorder.remote(server.url, backoff_max=0.2, wait=1.0)
    try:
        with rec.execution("before-outage"):
            pass
        assert rec.flush(10)
        server.stop()
        with rec.execution("during-outage", type="report") as run:  # the agent's work goes on
            run.event("worker_spawned", worker_id="w-9")
            run.event("worker_completed", worker_id="w-9")
            run.set_result("written while the server was away")
        rec.task_blocked("during-outage", reason="waiting for the server")
        assert rec.online is False and rec.pending == 5 and run.span_id is None
        server.start()  # same port, same database
        assert rec.flush(30), f"{rec.pending} records still pending"
    finally:
        rec.close()
    runs = listed(server.url)
    assert sorted((r["task_id"], r["worker_id"] or "") for r in runs) == [
        ("before-outage", ""), ("during-outage", ""), ("during-outage", "w-9"),
    ]  # fmt: skip
    outage = next(r for r in runs if r["task_id"] == "during-outage" and r["worker_id"] is None)
    assert (outage["status"], outage["span_id"]) == ("success", run.span_id)


def test_a_spool_keeps_records_across_processes_and_replaying_it_adds_no_duplicates(
    server: LiveServer, tmp_path: Path
) -> None:
    spool = tmp_path / "spool.jsonl"
    server.stop()
    first = Recorder.remote(server.url, spool=spool, backoff_max=0.2, wait=0.2)
    with first.execution("spooled") as run:
        run.event("myorg.checkpoint", step=1)
    first.task_created("spooled-task", priority="low")
    first.close(timeout=0.5)  # the server is down: the records stay in the spool
    assert len(spool.read_text(encoding="utf-8").splitlines()) == 4
    copy = shutil.copy(spool, tmp_path / "copy.jsonl")
    server.start()
    with Recorder.remote(server.url, spool=spool) as second:
        assert second.flush(30)
    assert spool.read_text(encoding="utf-8") == ""  # delivered: the spool is empty again
    with Recorder.remote(server.url, spool=copy) as replay:  # the same records a second time
        assert replay.flush(30) and replay.refused == []
    (only,) = listed(server.url, task_id="spooled")
    assert only["status"] == "success"
    timeline = asyncio.run(call(server.url, "tasks_get", span_id=only["span_id"]))
    assert [e["event_type"] for e in timeline["events"]] == ["myorg.checkpoint"]


def test_no_start_carries_a_trace_id_and_each_run_takes_the_one_the_server_gives(
    server: LiveServer, tmp_path: Path
) -> None:
    """A top-level run leaves its trace to the store (so it can join the task's open trace), a child
    joins its parent's and a retry its first attempt's: the recorder never makes one up."""
    spool = tmp_path / "spool.jsonl"
    server.stop()
    rec = Recorder.remote(server.url, spool=spool, backoff_max=0.2, wait=0.2)
    try:
        with rec.execution("top") as top, rec.execution("top", parent=top, type="worker") as child:
            pass
        with rec.execution("top", retry_of=top) as retry:
            pass
        assert (top.trace_id, child.trace_id, retry.trace_id) == (None, None, None)  # not known yet
        starts = [op for op in map(json.loads, spool.read_text(encoding="utf-8").splitlines())
                  if op["kind"] == "start"]  # fmt: skip
        assert len(starts) == 3 and not any("trace_id" in op["args"] for op in starts)
        server.start()
        assert rec.flush(30) and rec.refused == []
    finally:
        rec.close()
    runs = {r["span_id"]: r for r in listed(server.url, task_id="top")}
    assert {r["trace_id"] for r in runs.values()} == {top.trace_id} and top.trace_id is not None
    assert (child.trace_id, retry.trace_id, retry.attempt) == (top.trace_id, top.trace_id, 2)
    assert runs[str(retry.span_id)]["retry_of"] == top.span_id


def test_a_full_buffer_drops_new_records_and_counts_them(server: LiveServer) -> None:
    server.stop()
    with Recorder.remote(server.url, buffer_limit=3, wait=0.1, backoff_max=0.2) as rec:
        for n in range(5):
            rec.task_created(f"t-{n}")
        assert (rec.pending, rec.dropped) == (3, 2)
        server.start()
        assert rec.flush(30)


@pytest.mark.parametrize("transport", ["remote", "direct"])
def test_an_agent_killed_mid_run_leaves_an_honest_running_execution(
    server: LiveServer, db_path: Path, transport: str
) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    target = server.url if transport == "remote" else str(db_path)
    agent = subprocess.Popen(
        [sys.executable, str(AGENT), target], cwd=REPO, env=env, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert agent.stdout is not None
        said = agent.stdout.readline().split()
        assert said[:1] == ["started"], agent.stderr.read() if agent.stderr else said
        agent.send_signal(signal.SIGKILL)
        agent.wait(timeout=30)
    finally:
        if agent.poll() is None:
            agent.kill()
        agent.communicate()
    agent_run, helper = sorted(listed(server.url, task_id="killed-agent"), key=lambda r: r["worker_id"] or "")
    assert (agent_run["span_id"], agent_run["status"], agent_run["ended_at"]) == (said[1], "running", None)
    assert (helper["worker_id"], helper["status"], helper["parent_span_id"]) == (
        "helper-1",
        "running",
        said[1],
    )
    failed = asyncio.run(call(server.url, "tasks_last_failed"))
    assert (
        failed["total_failures"] == 0
    )  # nobody claims it failed: it is still running, as far as anyone knows
