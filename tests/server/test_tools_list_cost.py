"""What the tool definitions cost a client before its first call: the JSON of `tools/list`, in tokens
by the same estimate as every answer (server.budget.estimate_tokens). MCP_INTEGRATION.md quotes the
figures; this fails when the listing grows past the budget, so growth is a decision, not a drift."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from mcp import Client

from config import Settings
from server.listing import listing_tokens

Connect = Callable[..., Client]
GUIDE = Path(__file__).resolve().parents[2] / "MCP_INTEGRATION.md"

# Measured 11,067 (all 12 tools) and 5,581 (the 8 read tools, --read-only) when set: 8% of headroom.
LISTING_BUDGET = 12_000
READ_ONLY_LISTING_BUDGET = 6_050


async def _cost(connect: Connect, settings: Settings | None = None) -> int:
    async with connect(settings) as client:
        return listing_tokens((await client.list_tools()).tools)


async def test_tools_list_stays_within_its_token_budget(connect: Connect) -> None:
    assert await _cost(connect) <= LISTING_BUDGET


async def test_the_read_only_listing_stays_within_its_token_budget(
    connect: Connect, make_settings: Callable[..., Settings]
) -> None:
    assert await _cost(connect, make_settings(read_only=True)) <= READ_ONLY_LISTING_BUDGET


async def test_the_guide_quotes_the_measured_figure(connect: Connect) -> None:
    """MCP_INTEGRATION.md says what tools/list costs; keep the figure within 2% of the truth."""
    quoted = re.search(r"tools/list` costs a client about ([\d,]+) tokens", GUIDE.read_text(encoding="utf-8"))
    assert quoted, "MCP_INTEGRATION.md does not quote the tools/list cost"
    measured = await _cost(connect)
    assert abs(int(quoted[1].replace(",", "")) - measured) <= measured * 0.02, measured


async def test_schemas_are_listed_without_titles_or_null_defaults(connect: Connect) -> None:
    async with connect() as client:
        listed = [
            t.model_dump(mode="json", by_alias=True, exclude_none=True)
            for t in (await client.list_tools()).tools
        ]
    text = str(listed)
    assert "'title': 'Task Id'" not in text and "'default': None" not in text
