"""`task-history`: serve over streamable HTTP or stdio, or read the history from a terminal.

    task-history serve        uvicorn on settings.host:port, /mcp and /healthz
    task-history stdio        the same tools over stdin/stdout (Claude Desktop `command` entries)
    task-history list|trace|last-failed|get
                              the read tools as terminal tables (--json for scripts)
    task-history import|export|prune
                              move history in and out of the store (server.cli_history)
    task-history migrate|copy
                              apply schema migrations; copy a history between databases (server.cli_admin)

Settings come from `config.load_settings`: defaults < --config file < TASK_HISTORY_* < flags.
With auto_migrate off, every command but migrate and copy first checks that the database lacks no
migration (server.cli_admin.migration_problem), since opening the store would apply it.
Exit codes: 0 ok, 1 the store could not answer (not found, unavailable, not migrated), 2 bad settings
or arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from config import SETTINGS_SPEC, Settings, SettingsError, SettingSpec, is_loopback_host, load_settings
from server import cli_admin, cli_history
from server.budget import Shape, decode_offsets
from server.cli_errors import store_error_text, validation_text
from server.results import (
    ExecutionDocument,
    ExecutionList,
    LastFailedResult,
    ToolResult,
    TraceResult,
    last_failed_call,
)
from server.tables import terminal_view
from store.errors import InvalidInput, StoreError
from store.experience import to_document
from store.models import ExecutionFilter
from store.store import FAILED_LIMIT_MAX, LIST_LIMIT_MAX, Store

PROG = "task-history"


def _common_flags() -> argparse.ArgumentParser:
    """One flag per setting, generated from `config.SETTINGS_SPEC` so the help never drifts from the model."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group(
        "settings (flags override TASK_HISTORY_* variables and the config file)"
    )
    group.add_argument("--config", metavar="FILE", help="TOML settings file (default $TASK_HISTORY_CONFIG)")
    for spec in SETTINGS_SPEC:
        group.add_argument(*_flag_names(spec), dest=spec.name, default=None, **_flag_options(spec))
    return common


def _flag_names(spec: SettingSpec) -> list[str]:
    return [spec.cli_flag, "--db"] if spec.name == "database_url" else [spec.cli_flag]


def _flag_options(spec: SettingSpec) -> dict[str, Any]:
    shown = "none" if spec.default == "" else repr(spec.default)  # as README's settings table says
    text = f"{spec.description} [{spec.env_var}; default {shown}]"
    if spec.type_name == "bool":
        return {"action": argparse.BooleanOptionalAction, "help": text}
    if spec.choices:
        return {"choices": spec.choices, "type": str.upper, "help": text}
    metavar = "A,B" if spec.type_name == "list[str]" else spec.name.upper()
    return {"metavar": metavar, "help": text}  # strings: load_settings parses them like env values


def _read_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the tool's structured result as JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="AI-agent task execution history over MCP.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = [_common_flags()]
    commands.add_parser("serve", parents=common, help="serve MCP over streamable HTTP (/mcp, /healthz)")
    commands.add_parser("stdio", parents=common, help="serve MCP over stdin/stdout")
    _add_list(commands.add_parser("list", parents=common, help="recent executions (like tasks_list)"))
    trace = commands.add_parser("trace", parents=common, help="one trace (like tasks_by_trace)")
    trace.add_argument("trace_id")
    _add_last_failed(
        commands.add_parser("last-failed", parents=common, help="recent failures and error patterns")
    )
    get = commands.add_parser("get", parents=common, help="one execution in full (like tasks_get)")
    get.add_argument("span_id")
    for name in ("list", "trace", "last-failed", "get"):
        _read_flags(commands.choices[name])
    cli_history.add_commands(commands, common)
    cli_admin.add_commands(commands, common)
    for command in commands.choices.values():
        command.set_defaults(command_parser=command)  # for complaints in the command's own usage
    return parser


_SINCE = "only executions started at or after this ISO 8601 time (with offset, e.g. 2025-11-04T18:29:12Z)"
_UNTIL = "only executions started before this ISO 8601 time"


def _add_list(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task-id", help="only this task")
    parser.add_argument("--status", choices=("running", "success", "failed", "partial", "cancelled"))
    parser.add_argument("--task-type", help="only this task type")
    parser.add_argument("--actor", help="only executions started by this actor")
    parser.add_argument("--since", help=_SINCE)
    parser.add_argument("--until", help=_UNTIL)
    parser.add_argument(
        "--backfilled", action=argparse.BooleanOptionalAction, help="only imported (or live) history"
    )
    parser.add_argument(
        "--retrying",
        action=argparse.BooleanOptionalAction,
        help="only retries still running (or all the others)",
    )
    parser.add_argument("--limit", type=int, default=20, help=f"page size, 1..{LIST_LIMIT_MAX} (default 20)")
    parser.add_argument("--cursor", help="next page: the cursor printed under the previous page")


def _add_last_failed(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task-id", help="only this task")
    parser.add_argument("--since", help=_SINCE)
    parser.add_argument("--until", help=_UNTIL)
    parser.add_argument("--limit", type=int, default=10, help=f"1..{FAILED_LIMIT_MAX} (default 10)")
    parser.add_argument("--unique-errors", action="store_true", help="one failure per distinct stack_hash")
    parser.add_argument(
        "--cursor", help="older failures: the cursor printed under the previous page (same other flags)"
    )


def settings_from(args: argparse.Namespace) -> Settings:
    overrides = {spec.name: getattr(args, spec.name) for spec in SETTINGS_SPEC}
    return load_settings(overrides, config_file=args.config)


def open_bind_problem(settings: Settings) -> str | None:
    """Why `serve` must not start, if it must not: an open port with no token is anyone's database."""
    if settings.token or is_loopback_host(settings.host):
        return None
    return (
        f"refusing to serve on {settings.host}: it is not a loopback address and no token is configured, "
        "so anyone who can reach the port could read and write the history. "
        "Set --token (or TASK_HISTORY_TOKEN), or bind 127.0.0.1."
    )


# ---- read commands ---------------------------------------------------------------------


async def _list(store: Store, args: argparse.Namespace) -> ToolResult:
    fields = {name: getattr(args, name) for name in ExecutionFilter.model_fields}
    filters = ExecutionFilter(**{name: value for name, value in fields.items() if value is not None})
    return ExecutionList.of(await store.list_executions(filters, limit=args.limit, cursor=args.cursor))


async def _trace(store: Store, args: argparse.Namespace) -> ToolResult:
    return TraceResult.of(await store.trace(args.trace_id))


async def _last_failed(store: Store, args: argparse.Namespace) -> ToolResult:
    window = ExecutionFilter(since=args.since, until=args.until)  # the store's own timestamp rules
    # The cursor is tasks_last_failed's, so a page can go on in the terminal or in an MCP client.
    call = last_failed_call(args.task_id, window.since, window.until, args.unique_errors)
    page = await store.failure_page(
        limit=args.limit,
        task_id=args.task_id,
        since=window.since,
        until=window.until,
        unique_errors=args.unique_errors,
        before=decode_offsets(args.cursor, call, 2) if args.cursor else None,
    )
    stale = page.stale_running
    return LastFailedResult.of(page.view, positions=page.positions, call=call, stale_running=stale)


async def _get(store: Store, args: argparse.Namespace) -> ToolResult:
    detail = await store.get(args.span_id)
    return ExecutionDocument.of(detail, to_document(detail.execution), Shape(detail="full"))  # as tasks_get


_READERS: dict[str, Callable[[Store, argparse.Namespace], Awaitable[ToolResult]]] = {
    "list": _list,
    "trace": _trace,
    "last-failed": _last_failed,
    "get": _get,
}


async def _read(settings: Settings, args: argparse.Namespace) -> ToolResult:
    from server.app import open_store  # the MCP stack is only needed once a command runs

    async with await open_store(settings) as store:
        return await _READERS[args.command](store, args)


def _print_result(result: ToolResult, as_json: bool) -> None:
    print(result.model_dump_json(indent=2) if as_json else terminal_view(result))


# ---- serving ---------------------------------------------------------------------------


async def _preflight(settings: Settings) -> None:
    """Open (and migrate) the database before serving, so a bad path fails here with one clear line
    instead of inside the server's lifespan."""
    from server.app import open_store

    await (await open_store(settings)).close()


def _serve(settings: Settings) -> int:
    asyncio.run(_preflight(settings))
    import uvicorn

    from server.http import build_http_app, host_header

    where = host_header(settings.host, settings.port)
    database = cli_admin.shown_url(settings.database_url)
    print(f"{PROG}: serving http://{where}/mcp (database {database})", file=sys.stderr)
    app = build_http_app(settings)
    tune_collector_for_serving()
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level.lower())
    return 0


def _stdio(settings: Settings) -> int:
    from server.app import build_server

    asyncio.run(_preflight(settings))
    server = build_server(settings)
    tune_collector_for_serving()
    server.run("stdio")
    return 0


# Collections by allocation count: gen 0 after 20,000 net new objects instead of 700. A read builds
# thousands of short-lived objects (rows, models, JSON), and with the default each call ran several
# collections; the in-process tool calls of the 1M benchmark history took 10-30% less time with these
# (tasks_list, tasks_by_trace, a long tasks_timeline; alternating, 3 runs). Garbage without cycles is
# freed at once either way; only cyclic garbage waits, and 20,000 objects of it is a few MB at most.
SERVING_GC_THRESHOLDS = (20_000, 50, 100)


def tune_collector_for_serving() -> None:
    """Leave what the server built at start-up (modules, the SDK's and pydantic's schemas: ~95,000
    objects) out of every later garbage collection, and collect less often. The start-up objects
    live as long as the process, yet each full collection walked them all, stopping the event loop
    ~57 ms, and every call's collections paid for them too: an echo call cost ~20% less CPU with
    them frozen (bench/tools_bench.py, side by side)."""
    gc.collect()  # nothing collectable is frozen with them
    gc.freeze()
    gc.set_threshold(*SERVING_GC_THRESHOLDS)


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def _start_refusal(settings: Settings, command: str) -> tuple[str, int] | None:
    """Why `command` must not start, with its exit code: an open bind first (it needs no database),
    then a database that lacks migrations when auto_migrate is off."""
    bind_problem = open_bind_problem(settings) if command == "serve" else None
    if bind_problem:
        return bind_problem, 2
    migration_problem = asyncio.run(cli_admin.migration_problem(settings))
    return (migration_problem, 1) if migration_problem else None


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.command in cli_admin.COMMANDS:
        return cli_admin.run(settings, args)
    refusal = _start_refusal(settings, args.command)
    if refusal:
        return _fail(*refusal)
    if args.command == "serve":
        return _serve(settings)
    if args.command == "stdio":
        return _stdio(settings)
    if args.command in cli_history.COMMANDS:
        return cli_history.run(settings, args)
    missing = _missing_database(settings)
    if missing:
        return _fail(missing, 1)
    _print_result(asyncio.run(_read(settings, args)), args.json)
    return 0


def _missing_database(settings: Settings) -> str | None:
    """A read names a SQLite file that does not exist: say so, rather than create an empty one and
    answer "nothing matches" (a mistyped --db would look like a quiet history)."""
    from store.engines import engine_of
    from store.sqlite.backend import sqlite_path

    if engine_of(settings.database_url) != "sqlite":
        return None
    path = Path(sqlite_path(settings.database_url))
    if path.exists():
        return None
    return (
        f"no database at {path}: nothing has been recorded there. "
        "Check --db / TASK_HISTORY_DATABASE_URL (make serve uses ./data/task-history.db)."
    )


def main(argv: Sequence[str] | None = None) -> int:
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:
        # Left to the top-level parser, an unknown flag of `list` printed the usage of every command.
        args.command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return run(args)
    except SettingsError as error:
        return _fail(f"bad settings: {error}", 2)
    except ValidationError as error:
        return _fail(validation_text(args.command, error, args), 2)
    except StoreError as error:
        code = 2 if isinstance(error, InvalidInput) else 1
        return _fail(store_error_text(args.command, error, args), code)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): nothing more to say. Point stdout at /dev/null so the
        # interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
