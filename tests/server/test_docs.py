"""MCP_INTEGRATION.md documents every tool the server offers, with every argument."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from server.tools import READ_TOOLS, WRITE_TOOLS, ToolSpec

GUIDE = Path(__file__).resolve().parents[2] / "MCP_INTEGRATION.md"
TOOLS = READ_TOOLS + WRITE_TOOLS


def _section(name: str) -> str:
    text = GUIDE.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(name)}\n(.*?)(?=^## |\Z)", text, flags=re.MULTILINE | re.DOTALL)
    assert match, f"MCP_INTEGRATION.md has no '## {name}' section"
    return match.group(1)


@pytest.mark.parametrize("spec", TOOLS, ids=lambda spec: spec.fn.__name__)
def test_every_tool_has_its_section_in_mcp_integration_md(spec: ToolSpec) -> None:
    section = _section(spec.fn.__name__)
    for heading in ("**Result**", "**Errors**", "**Example**"):
        assert heading in section, f"{spec.fn.__name__}: no {heading}"


@pytest.mark.parametrize("spec", TOOLS, ids=lambda spec: spec.fn.__name__)
def test_every_argument_is_named_in_its_tools_section(spec: ToolSpec) -> None:
    section = _section(spec.fn.__name__)
    for argument in inspect.signature(spec.fn).parameters:
        if argument != "ctx":
            assert f"`{argument}`" in section, f"{spec.fn.__name__}: argument {argument} is not documented"


def test_the_guide_has_the_client_setups_and_the_debugging_walk() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    for needle in (
        "claude_desktop_config.json",
        "/ABS/PATH/.venv/bin/task-history",
        "npx",
        "mcp-remote",
        "claude mcp add --transport http task-history http://127.0.0.1:8001/mcp",
        "## Debugging a failure: last_failed -> by_trace -> list",
        "## Choices made where the issue was silent",
    ):
        assert needle in text, needle
