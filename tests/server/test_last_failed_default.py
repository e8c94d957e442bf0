"""The commonest call of all, tasks_last_failed with no arguments, answers whole within the default
budget on a history shaped like a real one: 10 failures with a real traceback each and the events
that led up to them, and the commonest error groups of more than it shows. (With 5 events a failure
and 20 patterns, as before, this history's default answer came to ~10,000 tokens and was cut.)"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from mcp import Client
from tool_support import ok

from server.budget import DEFAULT_MAX_TOKENS, estimate_tokens
from store.models import PATTERNS_SHOWN, RECENT_EVENTS_SHOWN

Connect = Callable[..., Client]
GROUPS = 24  # distinct errors, more than an answer shows
EVENTS_BEFORE = 5  # each failure's trace has more events than an answer shows
T0 = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)


def traceback_of(k: int) -> str:
    """A real-looking traceback: a call path of its own per error group, so each hashes apart."""
    return (
        "Traceback (most recent call last):\n"
        '  File "/srv/pipelines/nightly/run.py", line 88, in main\n'
        "    result = stage.run(context)\n"
        f'  File "/srv/pipelines/nightly/stages/stage_{k:02d}.py", line {40 + k}, in run\n'
        f"    rows = self.load_partition_{k:02d}(context.partition)\n"
        f'  File "/srv/pipelines/nightly/stages/stage_{k:02d}.py", line {90 + k}, in load_partition_{k:02d}\n'
        "    raise ConnectionError(f'upstream {host} refused the connection after {n} retries')\n"
        f"ConnectionError: upstream warehouse-{k}.internal refused the connection after 5 retries"
    )


async def record_failure(client: Client, k: int) -> str:
    """A failed run of nightly-stage-k with its stage events before the failure; its trace_id."""
    started = T0 + timedelta(minutes=5 * k)
    trace = await ok(
        client,
        "tasks_record",
        task_id=f"nightly-stage-{k:02d}",
        task_type="etl",
        actor="scheduler-3",
        status="failed",
        started_at=started.isoformat(),
        ended_at=(started + timedelta(minutes=4)).isoformat(),
        error={
            "type": "ConnectionError",
            "message": f"upstream warehouse-{k}.internal refused the connection after 5 retries",
            "stack": traceback_of(k),
        },
        io={"files_written": [f"exports/nightly/{k:02d}/part-0001.parquet"]},
    )
    for n in range(EVENTS_BEFORE):
        await ok(
            client,
            "tasks_log_event",
            event_type="etl.stage_progress",
            task_id=f"nightly-stage-{k:02d}",
            trace_id=trace["trace_id"],
            actor="scheduler-3",
            ts=(started + timedelta(seconds=30 * (n + 1))).isoformat(),
            data={"stage": f"partition-{n}", "rows_loaded": 1_000 * n, "source": f"warehouse-{k}"},
        )
    return str(trace["trace_id"])


async def test_the_default_answer_is_whole_with_the_lead_up_of_each_failure(connect: Connect) -> None:
    async with connect() as client:
        traces = [await record_failure(client, k) for k in range(GROUPS)]
        result = await client.call_tool("tasks_last_failed", {})
    answer, text = result.structured_content, result.content[0].text
    assert answer is not None and not result.is_error
    assert answer["truncated"] is False and answer["dropped_fields"] == [] and answer["omitted"] == 0
    assert estimate_tokens(answer) + estimate_tokens(text) <= DEFAULT_MAX_TOKENS
    # The 10 most recent failures, each with the last few events of its trace, data included.
    assert answer["returned"] == 10 and answer["total_failures"] == GROUPS
    assert [f["trace_id"] for f in answer["failures"]] == traces[::-1][:10]
    for failure in answer["failures"]:
        events = failure["recent_events"]
        assert [e["data"]["stage"] for e in events] == [
            f"partition-{n}" for n in range(EVENTS_BEFORE - RECENT_EVENTS_SHOWN, EVENTS_BEFORE)
        ]
        assert failure["error"]["stack_hash"]
    # The commonest groups, and the text says they are a few of more, and where the rest are.
    assert len(answer["error_patterns"]) == PATTERNS_SHOWN < answer["patterns_total"] == GROUPS
    assert f"the {PATTERNS_SHOWN} commonest of {GROUPS} groups" in text
    assert "tasks_failure_patterns" in text
    assert len(re.findall(r"^- 1x ConnectionError", text, flags=re.M)) == PATTERNS_SHOWN


async def test_when_every_group_is_shown_the_text_does_not_say_there_are_more(connect: Connect) -> None:
    async with connect() as client:
        for k in range(2):
            await record_failure(client, k)
        text = (await client.call_tool("tasks_last_failed", {})).content[0].text
    assert "Error patterns:\n" in text and "commonest of" not in text
