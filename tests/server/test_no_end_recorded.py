"""A run with no end recorded is shown as what the store knows ("no end recorded, started 12 days
ago"), never as "still running": a killed agent's run and one started a second ago differ by their
age. tasks_last_failed counts the window's runs without an end for over an hour (stale_running),
which never show up as failures."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mcp import Client
from tool_support import fail_once, ok, text_of

from server.results import no_end
from store.sqlite import analysis_queries as aq
from store.sqlite.schema import migrate

Connect = Callable[..., Client]
TASK = "killed-agent"


def _iso(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


async def _two_open_runs(client: Client) -> tuple[str, str]:
    """One run started 12 days ago whose agent was killed, one started just now; one failure."""
    old = await ok(
        client, "tasks_start", task_id=TASK, started_at=_iso(datetime.now(UTC) - timedelta(days=12))
    )
    new = await ok(client, "tasks_start", task_id=TASK)
    await fail_once(client, TASK, "boom")
    return old["span_id"], new["span_id"]


def test_the_wording_says_how_old_a_run_without_an_end_is() -> None:
    now = datetime(2025, 11, 4, 12, tzinfo=UTC)
    assert no_end(now - timedelta(days=12, hours=3), now) == "no end recorded, started 12 days ago"
    assert no_end(now - timedelta(seconds=1), now) == "no end recorded, started 1 s ago"
    assert no_end(now - timedelta(minutes=7), now) == "no end recorded, started 7 min ago"
    assert no_end(now - timedelta(hours=5), now) == "no end recorded, started 5 h ago"
    assert "future" in no_end(now + timedelta(minutes=1), now)


async def test_every_text_rendering_gives_a_run_without_an_end_its_age(connect: Connect) -> None:
    async with connect() as client:
        old, new = await _two_open_runs(client)
        listed = await text_of(client, "tasks_list", task_id=TASK, status="running")
        timeline = await text_of(client, "tasks_timeline", task_id=TASK)
        one = await text_of(client, "tasks_get", span_id=old)
        trace = await ok(client, "tasks_get", span_id=new)
        by_trace = await text_of(
            client, "tasks_by_trace", trace_id=trace["document"]["content"]["structured"]["trace_id"]
        )
    for text in (listed, timeline, one, by_trace):
        assert "still running" not in text, text
    assert "no end recorded, started 12 days ago" in listed and "no end recorded, started 0 s ago" in listed
    assert "no end recorded, started 12 days ago" in timeline and "running after" not in timeline
    assert "no end recorded, started 12 days ago" in one
    assert "no end recorded, started" in by_trace


async def test_last_failed_counts_runs_without_an_end_for_over_an_hour(connect: Connect) -> None:
    async with connect() as client:
        await _two_open_runs(client)
        answer = await ok(client, "tasks_last_failed")
        text = await text_of(client, "tasks_last_failed")
        recent = await ok(client, "tasks_last_failed", since=_iso(datetime.now(UTC) - timedelta(days=1)))
        other = await text_of(client, "tasks_last_failed", task_id="someone-else")
    assert answer["stale_running"] == 1 and answer["total_failures"] == 1  # not the one just started
    assert "1 execution has had no end recorded for over an hour" in text and "status='running'" in text
    assert recent["stale_running"] == 0  # the killed run started before this window
    assert other.startswith("No failed executions") and "no end recorded" not in other


def test_the_stale_count_reads_an_index(tmp_path: Path) -> None:
    with closing(sqlite3.connect(tmp_path / "plans.db", isolation_level=None)) as conn:
        migrate(conn)
        for query, index in (
            (aq.stale_running(None, None, None, 10), "ix_exec_status"),
            (aq.stale_running("t", 1, 9, 10), "ix_exec_task_status"),
        ):
            plan = "\n".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {query[0]}", query[1]))
            assert index in plan and "SCAN executions\n" not in plan + "\n", plan
