"""`task-history import | export | prune`: moving history in and out of the store from a terminal.

    task-history import PATH... [--format lineage|breakdown|experience|export] [--dry-run]
    task-history export [PATH|-] [--since T] [--until T]            JSONL (store.export)
    task-history export --otlp [ENDPOINT] [--since T] [--until T]   OpenTelemetry spans (server.otlp)
    task-history prune [--dry-run] [--archive DIR]                  retention (store.retention)

Records and listings go to stdout, progress and problems to stderr (so `export -` pipes cleanly).
Exit codes: 0 done; 1 done, but some records were skipped (import) or could not be delivered
(export --otlp fell back to a file); 2 bad arguments or settings."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, TextIO

from config import Settings
from store.engines import engine_of
from store.export import export_history
from store.importers import FORMATS, Problem, Progress, import_paths
from store.models import ExecutionFilter
from store.sqlite.backend import sqlite_path
from store.store import Store

COMMANDS = ("import", "export", "prune")
PROG = "task-history"


def add_commands(commands: Any, common: list[argparse.ArgumentParser]) -> None:
    """Add the three commands to the main parser's subparsers (server.cli.build_parser)."""
    _import_parser(commands.add_parser("import", parents=common, help="backfill history from files"))
    _export_parser(commands.add_parser("export", parents=common, help="write history as JSONL or OTLP spans"))
    _prune_parser(commands.add_parser("prune", parents=common, help="remove history past its retention"))


def _import_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", type=Path, help="files or folders to import")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="read every record as this format (default: each record says what it is)",
    )
    parser.add_argument("--dry-run", action="store_true", help="list what would be created; write nothing")
    parser.add_argument(
        "--task-prefix", default="", help="prepended to task ids of a task breakdown (namespacing)"
    )


def _export_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output", nargs="?", default="-", metavar="PATH", help="JSONL file, or - for stdout")
    parser.add_argument("--since", help="only what started (or happened) at or after this ISO 8601 time")
    parser.add_argument("--until", help="only what started (or happened) before this ISO 8601 time")
    parser.add_argument(
        "--otlp", nargs="?", const="", default=None, metavar="ENDPOINT",
        help="send executions as OpenTelemetry spans over OTLP/HTTP instead "
        "(default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as is, else OTEL_EXPORTER_OTLP_ENDPOINT, else "
        "http://localhost:4318; a base URL gets /v1/traces)",
    )  # fmt: skip
    parser.add_argument("--fallback", metavar="FILE", help="NDJSON file for spans the endpoint did not take")
    parser.add_argument(
        "--otlp-timeout", type=float, default=10.0, help="seconds per OTLP request (default 10)"
    )
    parser.add_argument("--force", action="store_true", help="send spans again even if already exported")


def _prune_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="count what would be removed; remove nothing")
    parser.add_argument(
        "--archive",
        metavar="DIR",
        type=Path,
        help="first append what is removed to DIR/lineage-YYYY-MM-DD.jsonl",
    )


def run(settings: Settings, args: argparse.Namespace) -> int:
    runner: dict[str, Callable[[Settings, argparse.Namespace], Any]] = {
        "import": _import, "export": _export, "prune": _prune,
    }  # fmt: skip
    return int(asyncio.run(runner[args.command](settings, args)))


async def _open(settings: Settings) -> Store:
    from server.app import open_store

    return await open_store(settings)


def _missing_database(settings: Settings) -> bool:
    url = settings.database_url
    return (
        engine_of(url) == "sqlite" and sqlite_path(url) != ":memory:" and not Path(sqlite_path(url)).exists()
    )


# ---- import ------------------------------------------------------------------------------


async def _import(settings: Settings, args: argparse.Namespace) -> int:
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        print(f"{PROG}: error: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    from server.app import policy_of

    store = None if args.dry_run and _missing_database(settings) else await _open(settings)
    progress = Progress(sys.stderr)
    try:
        report = await import_paths(
            store, args.paths, fmt=args.format, dry_run=args.dry_run, prefix=args.task_prefix,
            policy=policy_of(settings), on_problem=_say_skipped, on_item=print, progress=progress,
        )  # fmt: skip
    finally:
        if store is not None:
            await store.close()
    print(f"import: {report.summary()}")
    return 1 if report.skipped else 0


def _say_skipped(problem: Problem) -> None:
    print(f"{PROG} import: skipped {problem.where}: {problem.message}", file=sys.stderr)


# ---- export ------------------------------------------------------------------------------


def _window(args: argparse.Namespace) -> ExecutionFilter:
    return ExecutionFilter(since=args.since, until=args.until)  # the store's own timestamp rules


async def _export(settings: Settings, args: argparse.Namespace) -> int:
    if args.otlp is not None:
        from server.otlp import export_otlp

        async with await _open(settings) as store:
            return await export_otlp(store, args)
    window = _window(args)
    async with await _open(settings) as store:
        with _output(args.output) as out:
            ticker = _Ticker(sys.stderr, "export")
            counts = await export_history(
                store,
                lambda line: out.write(line + "\n"),
                since=window.since,
                until=window.until,
                progress=ticker,
            )
    where = "stdout" if args.output == "-" else args.output
    wrote = f"{counts.executions} executions, {counts.events} events, {counts.tasks} tasks"
    print(f"export: wrote {wrote} to {where}", file=sys.stderr)
    return 0


def _output(target: str) -> AbstractContextManager[TextIO]:
    if target == "-":
        return nullcontext(sys.stdout)
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    return open(target, "w", encoding="utf-8")


class _Ticker:
    """Counts records and says so on `stream` at most once a second."""

    def __init__(self, stream: TextIO, what: str, interval: float = 1.0) -> None:
        self._stream, self._what, self._interval = stream, what, interval
        self._last, self.count = time.monotonic(), 0

    def __call__(self, n: int) -> None:
        self.count += n
        if time.monotonic() - self._last >= self._interval:
            self._last = time.monotonic()
            print(f"{self._what}: {self.count:,} records written", file=self._stream)


# ---- prune -------------------------------------------------------------------------------


async def _prune(settings: Settings, args: argparse.Namespace) -> int:
    from store.retention import prune, retention_of

    retention = retention_of(
        settings.retain_success_days, settings.retain_failed_days, settings.retain_events_days
    )
    async with await _open(settings) as store:
        report = await prune(store, retention, dry_run=args.dry_run, archive=args.archive)
    print(f"prune: {report.summary()}")
    return 0
