"""tasks_by_trace pages stay put while the trace grows: an out-of-order event (kept, flagged, sorted
in by its time) recorded between two pages once shifted the offsets, so one event was shown twice
and another never."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from mcp import Client
from tool_support import ok

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _stamp(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


async def _pages(client: Client, trace_id: str, first: dict[str, Any]) -> list[dict[str, Any]]:
    pages, page = [first], first
    while page.get("next_cursor"):
        cursor = page["next_cursor"]
        page = await ok(client, "tasks_by_trace", trace_id=trace_id, max_tokens=1000, cursor=cursor)
        pages.append(page)
    return pages


async def test_an_event_recorded_between_pages_neither_repeats_nor_hides_one(
    connect: Callable[..., Client],
) -> None:
    async with connect() as client:
        started = await ok(client, "tasks_start", task_id="grow", started_at=_stamp(0))
        trace_id = started["trace_id"]
        for n in range(30):
            note = {"worker_id": "w", "note": f"step {n} " + "x" * 150}
            await ok(
                client, "tasks_log_event", event_type="worker_progress", task_id="grow", trace_id=trace_id,
                data=note, ts=_stamp(10 + n),
            )  # fmt: skip
        first = await ok(client, "tasks_by_trace", trace_id=trace_id, max_tokens=1000)
        assert first["next_cursor"] and first["returned"] < first["total"]
        late = {"worker_id": "w", "note": "late " + "y" * 150}
        await ok(
            client, "tasks_log_event", event_type="worker_progress", task_id="grow", trace_id=trace_id,
            data=late, ts=_stamp(1),
        )  # fmt: skip  # sorts before everything the first page showed
        pages = await _pages(client, trace_id, first)
        shown = [e["ts"] for p in pages for e in p["events"]]  # each event has a minute of its own
        before = [e["ts"] for e in (await ok(client, "tasks_by_trace", trace_id=trace_id))["events"]]
        assert len(shown) == len(set(shown)) == first["total"] - 1  # every event once; the run too
        assert set(shown) == set(before) - {before[0]}  # all but the late one, which sorted first
        assert "since its first page" in (pages[-1].get("rest") or ""), pages[-1]
        fresh = await ok(client, "tasks_by_trace", trace_id=trace_id)
        assert fresh["total"] == first["total"] + 1 and fresh["events"][0]["ts"] == before[0]
