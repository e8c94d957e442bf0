"""What every tool module shares: the annotation sets, the tool registry entry, reaching the store
from a call's context, and turning an answer into a `CallToolResult` (its text block and its
structured content)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult, TextContent, ToolAnnotations

from server.answer import ToolResult
from server.budget import Fitted
from store.store import Store

READ_ONLY = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
WRITE_IDEMPOTENT = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
WRITE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)


@dataclass(frozen=True)
class ToolSpec:
    fn: Callable[..., Any]
    annotations: ToolAnnotations
    title: str

    @property
    def name(self) -> str:
        return self.fn.__name__

    @property
    def arguments(self) -> frozenset[str]:
        return frozenset(name for name in inspect.signature(self.fn).parameters if name != "ctx")


def store_of(ctx: Context) -> Store:
    store: Store = ctx.request_context.lifespan_context.store
    return store


def reply(result: ToolResult) -> CallToolResult:
    text = TextContent(type="text", text=result.render())
    return CallToolResult(content=[text], structured_content=result.model_dump(mode="json"))


def reply_fitted(fitted: Fitted) -> CallToolResult:
    """A read answer as server.budget fitted it: the same fields in the text and the content."""
    return CallToolResult(
        content=[TextContent(type="text", text=fitted.text)], structured_content=fitted.content
    )
