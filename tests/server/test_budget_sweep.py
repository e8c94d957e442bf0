"""Every read tool, over a large generated history (tests/server/big_history.py), at every detail
level and a range of budgets: each answer stays within max_tokens by the documented estimate
(structured content plus text), and states truncation honestly - `truncated` is true exactly when
a field was dropped, text was clipped or items were left out, what it names as dropped is really
gone, and an answer that says it is whole is the same as the answer with the largest budget."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from big_history import BigHistory, build
from mcp import Client

from config import load_settings
from server.app import build_server
from server.budget import CLIP_MARK, MAX_TOKENS_LIMIT, estimate_tokens
from server.tools import READ_TOOLS
from store.admin import copy_history

BUDGETS = (1_000, 3_000, 8_000, MAX_TOKENS_LIMIT)
DETAILS = ("summary", "standard", "full")
ITEMS = {  # the lists `returned` counts
    "tasks_list": ("executions",),
    "tasks_by_trace": ("executions", "events"),
    "tasks_last_failed": ("failures",),
    "tasks_get": ("events",),
    "tasks_failure_patterns": ("groups",),
    "tasks_stats": ("groups",),
    "tasks_timeline": ("steps",),
    "tasks_side_effects": ("matches",),
}
# Lists of executions a reader came for: when there are any, a budget (1,000 tokens or more, which
# always holds one summary row) keeps at least one of them, cutting other lists and fields first.
NEVER_EMPTIED = {
    "tasks_list": "executions",
    "tasks_by_trace": "executions",
    "tasks_last_failed": "failures",
    "tasks_side_effects": "matches",
}


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> BigHistory:
    """Built once per module on a SQLite file (big_history writes the file directly)."""
    return asyncio.run(build(tmp_path_factory.mktemp("big") / "history.db"))


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def history_url(request: pytest.FixtureRequest, history: BigHistory) -> str:
    """The big history's database: the SQLite file itself, or a PostgreSQL schema it was copied into
    by store.admin.copy_history, so both engines are swept with the very same rows."""
    if request.param == "sqlite":
        return str(history.path)
    url = str(request.getfixturevalue("module_postgres_url"))
    report = asyncio.run(copy_history(str(history.path), url, batch=5000))
    assert not report.conflicts and report.executions.copied == len(history.spans)
    return url


def calls(h: BigHistory) -> dict[str, list[dict[str, Any]]]:
    quiet = {"task_id": h.quiet_task}
    return {
        "tasks_list": [
            {},
            {"limit": 100},
            {"status": "failed", "limit": 100},
            {"task_id": h.busy_task, "limit": 100},
            quiet,
        ],
        "tasks_by_trace": [{"trace_id": h.big_trace}, {"trace_id": h.retry_trace}, {"trace_id": "quiet-7"}],
        "tasks_last_failed": [
            {},
            {"limit": 50},
            {"limit": 50, "unique_errors": True},
            {"limit": 1},
            {"task_id": h.busy_task},
            quiet,
        ],
        "tasks_get": [
            {"span_id": h.long_failure},
            {"span_id": h.worker_span},
            {"span_id": h.spans[500]},
            {"span_id": "quiet-span-7"},
        ],
        "tasks_failure_patterns": [{}, {"limit": 50}, {"task_id": h.busy_task, "limit": 50}, quiet],
        "tasks_stats": [
            {"task_id": h.busy_task},
            {"group_by": "task_id", "limit": 100},
            {"group_by": "task_id", "limit": 7},  # at 1,000 tokens fields go but every group stays
            {"group_by": "actor"},
        ],
        "tasks_timeline": [
            {"task_id": h.busy_task},
            {"trace_id": h.big_trace},
            {"trace_id": h.retry_trace},
            quiet,
        ],
        "tasks_side_effects": [
            {"file": "reports/"},
            {"tool_call": "grep", "limit": 100},
            {"file": h.file},
            {"file": "quiet/"},
        ],
    }


def _client(database_url: str) -> Client:
    return Client(build_server(load_settings({"database_url": database_url}, environ={})))


async def _call(client: Client, tool: str, arguments: dict[str, Any]) -> tuple[dict[str, Any], str]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, f"{tool}({arguments}): {result.content[0].text}"
    assert result.structured_content is not None
    return result.structured_content, result.content[0].text  # type: ignore[union-attr]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _present(content: dict[str, Any], shown_path: str) -> bool:
    """Whether any item still has the field `events[].data` names."""
    nodes: list[Any] = [content]
    for part in shown_path.split("."):
        name, many = (part[:-2], True) if part.endswith("[]") else (part, False)
        nodes = [n[name] for n in nodes if isinstance(n, dict) and name in n]
        nodes = [item for n in nodes for item in n] if many else nodes
    return bool(nodes)


def check(
    tool: str, arguments: dict[str, Any], content: dict[str, Any], text: str, ample: dict[str, Any]
) -> None:
    budget = arguments["max_tokens"]
    where = f"{tool}({arguments})"
    assert estimate_tokens(content) + estimate_tokens(text) <= budget, where
    cut = bool(content["dropped_fields"] or content["clipped_fields"] or content["omitted"])
    assert content["truncated"] is cut, where
    if content["truncated"]:  # every cut says how to get what it left out
        assert isinstance(content.get("rest"), str) and content["rest"], f"{where}: truncated, no rest"
    marked = any(CLIP_MARK in s for s in _strings({k: v for k, v in content.items() if k != "rest"}))
    assert marked is bool(content["clipped_fields"]), where
    for name in content["dropped_fields"]:
        assert not _present(content, name), f"{where}: {name} is said dropped but is there"
    assert content["returned"] == sum(len(content[name]) for name in ITEMS[tool]), where
    kept = NEVER_EMPTIED.get(tool)
    if kept and ample[kept]:
        assert content[kept], f"{where}: the budget left out every one of {kept}"
    if not content["truncated"]:
        same = _timeless(tool, arguments, content) == _timeless(tool, arguments, ample)
        assert same, f"{where} says it is whole but differs from the largest-budget answer"


def _timeless(tool: str, arguments: dict[str, Any], content: dict[str, Any]) -> dict[str, Any]:
    """`content` without what depends on the wall clock: failure patterns without `until` end their
    trend at now, so the bucket width (and which bucket a failure falls in) moves between two calls
    a few seconds apart."""
    if tool != "tasks_failure_patterns" or "until" in arguments:
        return content
    groups = [{k: v for k, v in g.items() if k != "trend"} for g in content["groups"]]
    return {**{k: v for k, v in content.items() if k != "trend_bucket_seconds"}, "groups": groups}


@pytest.mark.parametrize("tool", [spec.name for spec in READ_TOOLS])
async def test_every_answer_fits_its_budget_and_says_what_it_left_out(
    history: BigHistory, history_url: str, tool: str
) -> None:
    seen_cut = seen_whole = 0
    async with _client(history_url) as client:
        for base in calls(history)[tool]:
            for detail in DETAILS:
                ample, _ = await _call(
                    client, tool, {**base, "detail": detail, "max_tokens": MAX_TOKENS_LIMIT}
                )
                for budget in BUDGETS:
                    arguments = {**base, "detail": detail, "max_tokens": budget}
                    content, text = await _call(client, tool, arguments)
                    check(tool, arguments, content, text, ample)
                    if tool == "tasks_last_failed" and content["has_more"] and content["failures"]:
                        assert content["next_cursor"] and "cursor" in text.splitlines()[0], arguments
                    seen_cut += content["truncated"]
                    seen_whole += not content["truncated"]
    assert seen_cut and seen_whole  # the sweep exercised both kinds of answer


async def test_a_budget_cut_list_continues_at_its_cursor_without_gaps(history_url: str) -> None:
    async with _client(history_url) as client:
        whole, _ = await _call(
            client,
            "tasks_list",
            {"status": "failed", "limit": 60, "max_tokens": MAX_TOKENS_LIMIT, "detail": "summary"},
        )
        assert whole["omitted"] == 0 and whole["returned"] == 60
        seen: list[str] = []
        page, _ = await _call(client, "tasks_list", {"status": "failed", "limit": 60, "max_tokens": 1000})
        while len(seen) < 60:
            assert page["returned"] > 0
            seen += [e["span_id"] for e in page["executions"]]
            arguments = {"status": "failed", "limit": 60 - len(seen), "max_tokens": 1000}
            if len(seen) < 60:
                page, _ = await _call(client, "tasks_list", {**arguments, "cursor": page["next_cursor"]})
    assert seen == [e["span_id"] for e in whole["executions"]]


async def test_a_budget_cut_trace_pages_through_every_event_once(
    history: BigHistory, history_url: str
) -> None:
    async with _client(history_url) as client:
        arguments: dict[str, Any] = {"trace_id": history.big_trace, "detail": "summary", "max_tokens": 4000}
        events: list[str] = []
        while True:
            page, _ = await _call(client, "tasks_by_trace", arguments)
            events += [e["ts"] + e["event_type"] for e in page["events"]]
            if not page["next_cursor"] or not page["omitted"]:
                break
            arguments["cursor"] = page["next_cursor"]
    assert len(events) == page["total"] - 1 and len(events) >= 1000  # every event (and one execution)
