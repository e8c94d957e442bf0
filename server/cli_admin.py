"""`task-history migrate | copy`: the schema and whole histories, for operators (store.admin).

    task-history migrate [--database-url URL]   apply the migrations the database lacks, naming each
                                                (nothing the second time)
    task-history copy --to URL [--from URL]     copy every execution, event and task state into another
                                                database, SQLite <-> PostgreSQL; --from defaults to
                                                the configured database_url

And the gate in front of every other command: with `auto_migrate` off, a database that lacks
migrations is refused with a message to run `task-history migrate`, so a fleet is upgraded in order
(migrate once, then restart the servers) instead of by whichever server happens to start first.

Summaries go to stdout, progress and problems to stderr. Exit codes: 0 done; 1 the database could not
be reached or lacks migrations, or copy met rows that collide with different ones in the target;
2 bad arguments or settings."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from config import Settings
from store.admin import BATCH_MAX, CopyReport, copy_history, migrate, pending_migrations
from store.engines import engine_of
from store.sqlite.backend import sqlite_path
from store.transfer import Table, TableReport

COMMANDS = ("migrate", "copy")
PROG = "task-history"
_TARGET_HELP = "a SQLite path, sqlite:///path or postgresql://...; created and migrated when new"


def add_commands(commands: Any, common: list[argparse.ArgumentParser]) -> None:
    """Add migrate and copy to the main parser's subparsers (server.cli.build_parser)."""
    commands.add_parser(
        "migrate", parents=common, help="apply the schema migrations the database lacks, naming each"
    )
    copy = commands.add_parser(
        "copy", parents=common, help="copy a whole history into another database (SQLite <-> PostgreSQL)"
    )
    copy.add_argument("--to", dest="to_url", metavar="URL", required=True, help=f"target: {_TARGET_HELP}")
    copy.add_argument(
        "--from",
        dest="from_url",
        metavar="URL",
        help="source database (default: the configured database_url)",
    )
    copy.add_argument(
        "--batch", type=int, default=1000, help=f"rows per target transaction, 1..{BATCH_MAX} (default 1000)"
    )


def run(settings: Settings, args: argparse.Namespace) -> int:
    runner: dict[str, Callable[[Settings, argparse.Namespace], Any]] = {"migrate": _migrate, "copy": _copy}
    return int(asyncio.run(runner[args.command](settings, args)))


def shown_url(url: str) -> str:
    """`url` without its password (in the authority or as ?password=), for messages and logs."""
    parts = urlsplit(url)
    if not parts.scheme or "://" not in url:
        return url  # a plain SQLite path
    if parts.password is not None:
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{parts.netloc.rpartition('@')[2]}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == "password" for key, _ in query):
        hidden = [(key, "***" if key == "password" else value) for key, value in query]
        parts = parts._replace(query=urlencode(hidden, safe="/:=*"))
    return urlunsplit(parts)


# ---- the gate ----------------------------------------------------------------------------


async def migration_problem(settings: Settings) -> str | None:
    """Why a command must not open the database, if it must not: auto_migrate is off and the
    database lacks migrations (opening it would apply them, which the operator turned off)."""
    if settings.auto_migrate:
        return None
    pending = await pending_migrations(settings.database_url)
    if not pending:
        return None
    return (
        f"the database {shown_url(settings.database_url)} lacks {len(pending)} schema migration(s) "
        f"({', '.join(pending)}) and auto_migrate is off; run `{PROG} migrate` with the same "
        "--database-url first (once for the whole fleet), then start again"
    )


# ---- migrate -----------------------------------------------------------------------------


async def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    applied = await migrate(settings.database_url)
    for name in applied:
        print(f"applied {name}")
    where = shown_url(settings.database_url)
    if applied:
        print(f"migrate: applied {len(applied)} migration(s) to {where}")
    else:
        print(f"migrate: {where} is up to date; nothing to apply")
    return 0


# ---- copy --------------------------------------------------------------------------------


async def _copy(settings: Settings, args: argparse.Namespace) -> int:
    source = args.from_url or settings.database_url
    if _missing_sqlite_file(source):
        # Opening it would create an empty database and "copy" nothing: a typo should say so.
        print(f"{PROG}: error: copy: no database file at {source}", file=sys.stderr)
        return 2
    report = await copy_history(source, args.to_url, batch=args.batch, progress=_Progress(sys.stderr))
    for conflict in report.conflicts:
        print(f"{PROG} copy: not copied: {conflict}", file=sys.stderr)
    print(f"copy: {shown_url(source)} -> {shown_url(args.to_url)}: {_summary(report)}")
    return 1 if report.conflicts else 0


def _missing_sqlite_file(url: str) -> bool:
    return (
        engine_of(url) == "sqlite" and sqlite_path(url) != ":memory:" and not Path(sqlite_path(url)).exists()
    )


def _summary(report: CopyReport) -> str:
    tables: list[tuple[str, TableReport]] = [
        ("executions", report.executions), ("events", report.events), ("tasks", report.tasks),
        ("span exports", report.span_exports),
    ]  # fmt: skip
    parts = [
        f"{name} {t.copied} copied, {t.updated} updated, {t.skipped} already there" for name, t in tables
    ]
    conflicts = f"; {len(report.conflicts)} conflicting rows not copied" if report.conflicts else ""
    return "; ".join(parts) + conflicts


class _Progress:
    """Says how far the copy has read, at most once a second (a large history takes minutes)."""

    def __init__(self, stream: Any, interval: float = 1.0) -> None:
        self._stream, self._interval, self._last = stream, interval, time.monotonic()

    def __call__(self, table: Table, read: int) -> None:
        if time.monotonic() - self._last >= self._interval:
            self._last = time.monotonic()
            print(f"copy: {table}: {read:,} rows read", file=self._stream)
