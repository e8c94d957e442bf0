"""What tools/list tells a client: names, annotations, input bounds, output schemas."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp import Client

from config import Settings
from server.app import build_server
from server.errors import WRITE_TOOL_NAMES
from server.tools import READ_TOOLS, WRITE_TOOLS

Connect = Callable[..., Client]

READ_NAMES = {
    "tasks_list",
    "tasks_by_trace",
    "tasks_last_failed",
    "tasks_get",
    "tasks_failure_patterns",
    "tasks_stats",
    "tasks_timeline",
    "tasks_side_effects",
}
WRITE_NAMES = {"tasks_start", "tasks_finish", "tasks_log_event", "tasks_record"}


async def _tools(connect: Callable[..., Client], settings: Settings | None = None) -> dict[str, Any]:
    async with connect(settings) as client:
        return {tool.name: tool for tool in (await client.list_tools()).tools}


async def test_every_tool_is_listed_by_its_product_name(connect: Connect) -> None:
    assert set(await _tools(connect)) == READ_NAMES | WRITE_NAMES


async def test_read_only_mode_lists_only_the_read_tools(
    connect: Connect, make_settings: Callable[..., Settings]
) -> None:
    read_only = make_settings(read_only=True)
    assert set(await _tools(connect, read_only)) == READ_NAMES
    async with connect(read_only) as client:
        refused = await client.call_tool("tasks_start", {"task_id": "t"})
    assert refused.is_error and "read-only" in refused.content[0].text


async def test_read_tools_are_annotated_read_only_and_write_tools_not(connect: Connect) -> None:
    tools = await _tools(connect)
    for name, tool in tools.items():
        hints = tool.annotations
        assert hints.read_only_hint is (name in READ_NAMES), name
        assert hints.destructive_hint is False, name
        assert hints.open_world_hint is False, name
    assert tools["tasks_record"].annotations.idempotent_hint is True
    assert tools["tasks_start"].annotations.idempotent_hint is False  # only with a key: see the guide
    assert tools["tasks_log_event"].annotations.idempotent_hint is False


async def test_tasks_list_advertises_limit_bounds_and_an_output_schema(connect: Connect) -> None:
    tool = (await _tools(connect))["tasks_list"]
    limit = tool.input_schema["properties"]["limit"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 100, 20)
    output = tool.output_schema
    assert output["type"] == "object"
    assert {"executions", "total", "total_exact", "returned", "has_more", "next_cursor"} <= set(
        output["required"]
    )


async def test_tasks_last_failed_limit_is_bounded_1_to_50(connect: Connect) -> None:
    limit = (await _tools(connect))["tasks_last_failed"].input_schema["properties"]["limit"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 50, 10)


async def test_every_tool_has_an_output_schema_and_a_description(connect: Connect) -> None:
    for name, tool in (await _tools(connect)).items():
        assert tool.output_schema and tool.output_schema["type"] == "object", name
        assert len(tool.description or "") > 40, name


async def test_every_parameter_is_described_in_the_input_schema(connect: Connect) -> None:
    for name, tool in (await _tools(connect)).items():
        for param, schema in tool.input_schema["properties"].items():
            assert schema.get("description"), f"{name}.{param} has no description"


async def test_status_parameters_are_enumerated(connect: Connect) -> None:
    tools = await _tools(connect)
    finish_status = tools["tasks_finish"].input_schema["properties"]["status"]
    assert finish_status["enum"] == ["success", "failed", "partial", "cancelled"]


def test_the_registry_splits_read_and_write_tools_by_name(settings: Settings) -> None:
    assert {spec.fn.__name__ for spec in READ_TOOLS} == READ_NAMES
    assert {spec.fn.__name__ for spec in WRITE_TOOLS} == WRITE_NAMES
    assert set(build_server(settings).tool_names) == READ_NAMES | WRITE_NAMES


async def test_output_schemas_type_top_level_fields_and_declare_items_as_objects(connect: Connect) -> None:
    output = (await _tools(connect))["tasks_list"].output_schema
    assert output["properties"]["executions"] == {"type": "array", "items": {"type": "object"}}
    assert output["properties"]["total"]["type"] == "integer" and "$defs" not in output


def test_the_errors_know_which_tools_write() -> None:
    """Only a write tool's error says that nothing was written (server.errors)."""
    assert {spec.name for spec in WRITE_TOOLS} == WRITE_TOOL_NAMES
