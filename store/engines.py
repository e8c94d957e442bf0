"""Which storage engine a database URL names, and opening it.

A plain path or `sqlite:///path` is SQLite (the default: one file, zero set-up);
`postgresql://...` (or `postgres://...`) is PostgreSQL, for a history shared by many hosts
and server processes. The engines are imported only when chosen."""

from __future__ import annotations

from typing import Literal

from store.backend import Backend, BackendOptions
from store.errors import InvalidInput
from store.rules import Policy

Engine = Literal["sqlite", "postgres"]
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def engine_of(database_url: str) -> Engine:
    if database_url.startswith(POSTGRES_SCHEMES):
        return "postgres"
    if "://" in database_url and not database_url.startswith("sqlite:///"):
        raise InvalidInput(
            "database_url",
            f"{database_url.split('://', 1)[0]}:// is not a database this store knows",
            hint="Use a file path, sqlite:///path or postgresql://user@host:port/dbname.",
        )
    return "sqlite"


async def open_backend(database_url: str, policy: Policy, options: BackendOptions) -> Backend:
    """Open (creating and migrating) the database at `database_url`."""
    if engine_of(database_url) == "postgres":
        from store.postgres.backend import PostgresBackend

        return await PostgresBackend.open(database_url, policy, options)
    from store.sqlite.backend import SqliteBackend, sqlite_path

    return await SqliteBackend.open(sqlite_path(database_url), policy, options)
