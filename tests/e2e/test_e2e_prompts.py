"""prompts/get over real streamable HTTP in both eras: a mistake (an unknown prompt, an argument the
prompt does not take, a `since` that is not a time) is INVALID_PARAMS (-32602) whose message says how
to fix it, never code 0 or an opaque internal error, and the server keeps serving."""

from __future__ import annotations

import pytest
from conftest import RunningServer
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

pytestmark = pytest.mark.parametrize("mode", ["auto", "legacy"])

BAD_CALLS = [
    ("nope", {}, "Unknown prompt 'nope'. This server offers: debug_recent_failures"),
    ("debug_recent_failures", {"bogus": "x"}, "takes no argument 'bogus'; it takes: task_id, since"),
    ("debug_recent_failures", {"since": "yesterday"}, "argument since is invalid"),
    ("debug_recent_failures", {"since": "2025-11-04T00:00:00"}, "ISO 8601 time with offset"),
]


@pytest.mark.parametrize(("name", "arguments", "expected"), BAD_CALLS)
async def test_a_bad_prompts_get_is_invalid_params_that_says_how_to_fix_it(
    http_server: RunningServer, mode: str, name: str, arguments: dict[str, str], expected: str
) -> None:
    async with Client(http_server.mcp_url, mode=mode) as client:
        with pytest.raises(MCPError) as raised:
            await client.get_prompt(name, arguments)
        assert raised.value.code == INVALID_PARAMS
        assert expected in raised.value.message
        rendered = await client.get_prompt("debug_recent_failures", {"since": "2025-11-04T00:00:00Z"})
    text = rendered.messages[0].content.text  # type: ignore[union-attr]
    assert "since='2025-11-04T00:00:00Z'" in text


async def test_the_prompt_description_reads_as_one_paragraph(http_server: RunningServer, mode: str) -> None:
    async with Client(http_server.mcp_url, mode=mode) as client:
        [prompt] = (await client.list_prompts()).prompts
    assert prompt.description is not None and "\n" not in prompt.description
    assert prompt.description.startswith("Walk through recent failures: tasks_last_failed ->")
