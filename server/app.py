"""The task-history MCP server object: settings in, a `Store` opened by the lifespan, the tools registered.

Both transports (streamable HTTP in `server.http`, stdio in `server.cli`) serve the object built here,
so they offer the same tools with the same error texts. `TaskHistoryServer.call_tool` is the single
place where failures become tool errors (see `server.errors`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import Tool as MCPTool

from config import Settings
from server.errors import WRITE_TOOL_NAMES, check_arguments, to_tool_error, unknown_tool
from server.listing import compact_tool
from server.prompts import check_prompt_call, register_prompts
from server.resources import register_resources
from server.stdio import serve_stdio
from server.tools import register, tools_for
from store.backend import BackendOptions
from store.rules import Policy
from store.store import Store

INSTRUCTIONS = """\
task-history records AI-agent and scheduler task executions and their lifecycle events.
Record: tasks_start when work begins and tasks_finish(span_id, status) when it ends; tasks_record for a
whole execution after the fact; tasks_log_event for lifecycle events (task_created ... handoff_completed).
Debug: tasks_last_failed (recent failures + error patterns) -> tasks_failure_patterns (groups, trends,
retry fixes) -> tasks_by_trace(trace_id) (the whole story) -> tasks_list / tasks_stats / tasks_timeline
for one task; tasks_get(span_id) shows one execution in full; tasks_side_effects finds who wrote a file
or called a tool.
Read tools take detail (summary|standard|full) and max_tokens; a cut answer says truncated=true and how to
get the rest. Prompt: debug_recent_failures. Resources: task-history://execution/{span_id}, .../trace/{id}.
Timestamps are ISO 8601 with a UTC offset (2025-11-04T18:29:12Z)."""


def _version() -> str:
    try:
        return version("task-history")
    except PackageNotFoundError:  # running from a source tree without an install
        return "0.0.0+source"


@dataclass(frozen=True)
class Runtime:
    """What the lifespan yields to the tools (`ctx.request_context.lifespan_context`)."""

    settings: Settings
    store: Store


def policy_of(settings: Settings) -> Policy:
    return Policy(
        scrub_pii=settings.scrub_pii,
        max_text_chars=settings.max_text_chars,
        max_data_bytes=settings.max_data_bytes,
        max_list_items=settings.max_list_items,
    )


def options_of(settings: Settings) -> BackendOptions:
    return BackendOptions(
        synchronous=settings.sqlite_synchronous,
        busy_timeout_ms=settings.busy_timeout_ms,
        write_batch_max=settings.write_batch_max,
    )


async def open_store(settings: Settings) -> Store:
    """The store as the settings describe it (used by the server and the CLI alike)."""
    return await Store.open(settings.database_url, policy=policy_of(settings), options=options_of(settings))


class TaskHistoryServer(MCPServer[Runtime]):
    """`MCPServer` with the task-history tools and fix-it error texts."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            "task-history",
            title="Task history",
            instructions=INSTRUCTIONS,
            version=_version(),
            lifespan=_lifespan,
            log_level=settings.log_level,
        )
        self.config = settings  # not `settings`: MCPServer uses that name for its own
        self.live_store: Store | None = None  # set while an HTTP lifespan runs; /healthz probes it
        self._arguments = register(self, tools_for(settings.read_only))
        register_resources(self)
        register_prompts(self)

    async def list_tools(self) -> list[MCPTool]:
        """The tools with compact schemas (server.listing): what every client pays for up front."""
        limits = {"max_text_chars": self.config.max_text_chars, "max_list_items": self.config.max_list_items}
        return [compact_tool(tool, **limits) for tool in await super().list_tools()]

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Runtime, Any] | None = None
    ) -> Any:
        """Every tool call passes here (both HTTP eras, stdio, in-memory): refuse what the SDK would let
        through unnoticed, then turn every anticipated failure into a fix-it tool error."""
        if name not in self._arguments:
            raise unknown_tool(
                name, self._arguments, withheld=name in WRITE_TOOL_NAMES and self.config.read_only
            )
        check_arguments(name, arguments, self._arguments[name])
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as error:
            raise to_tool_error(name, error) from error.__cause__

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None, context: Context[Runtime, Any] | None = None
    ) -> Any:
        """prompts/get, with the call checked first so a mistake is INVALID_PARAMS saying how to fix it."""
        check_prompt_call(name, arguments)
        return await super().get_prompt(name, arguments, context)

    async def run_stdio_async(self) -> None:
        """stdio with stdin read as bytes, so broken text is refused by field name (server.stdio)."""
        await serve_stdio(self)

    @property
    def tool_names(self) -> tuple[str, ...]:
        return tuple(self._arguments)


@asynccontextmanager
async def _lifespan(server: MCPServer[Runtime]) -> AsyncIterator[Runtime]:
    """Open the store once per app (per connection for the in-memory test client) and always close it."""
    assert isinstance(server, TaskHistoryServer)
    store = await open_store(server.config)
    server.live_store = store
    try:
        yield Runtime(server.config, store)
    finally:
        if server.live_store is store:
            server.live_store = None
        await store.close()


def build_server(settings: Settings) -> TaskHistoryServer:
    return TaskHistoryServer(settings)
