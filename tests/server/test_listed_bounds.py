"""The listed input schemas state the size bounds the server's settings enforce, so a client knows
them before it calls: free text (result, error message and stack, retrieval query) and lists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp import Client

from config import Settings

Connect = Callable[..., Client]


def _schema(tools: list[Any], name: str) -> dict[str, Any]:
    return next(t.input_schema for t in tools if t.name == name)


async def test_text_and_list_arguments_carry_the_configured_bounds(
    connect: Connect, make_settings: Callable[..., Settings]
) -> None:
    async with connect(make_settings(max_text_chars=5000, max_list_items=40)) as client:
        tools = (await client.list_tools()).tools
    record = _schema(tools, "tasks_record")
    assert record["properties"]["result"]["maxLength"] == 5000
    assert record["properties"]["parents"]["maxItems"] == 40
    error = record["$defs"]["ErrorInput"]["properties"]
    assert error["message"]["maxLength"] == error["stack"]["maxLength"] == 5000
    assert record["$defs"]["IOEffects"]["properties"]["files_written"]["maxItems"] == 40
    assert _schema(tools, "tasks_start")["$defs"]["Retrieval"]["properties"]["query"]["maxLength"] == 5000


async def test_a_call_over_the_listed_bound_is_a_tool_error_naming_the_setting(
    connect: Connect, make_settings: Callable[..., Settings]
) -> None:
    async with connect(make_settings(max_text_chars=300)) as client:
        arguments = {"task_id": "t", "started_at": "2025-11-04T18:29:12Z", "status": "success"}
        result = await client.call_tool("tasks_record", {**arguments, "result": "x" * 301})
    assert result.is_error and "max_text_chars" in result.content[0].text  # type: ignore[union-attr]
