"""A psycopg connection as a `store.dbapi.Tx`, so the engine-neutral write jobs run unchanged.

The jobs speak SQLite's `?` placeholders; psycopg wants `%s` (and a literal `%` doubled)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import psycopg

from store.dbapi import UniqueViolation
from store.errors import InvalidInput

# A quoted literal is kept whole so a `?` inside it stays a character, not a placeholder.
_TOKENS = re.compile(r"'(?:[^']|'')*'|\?|%")


@lru_cache(maxsize=1024)
def pg_sql(sql: str) -> str:
    """`sql` with `?` placeholders in psycopg's `%s` style."""
    return _TOKENS.sub(_pg_token, sql)


def _pg_token(match: re.Match[str]) -> str:
    token = match[0]
    if token == "?":
        return "%s"
    return token.replace("%", "%%")


class PgTx:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        with nul_refused():
            return self._conn.execute(pg_sql(sql), params)

    def try_insert(self, sql: str, params: Sequence[Any]) -> UniqueViolation | None:
        # A failed statement aborts the whole PostgreSQL transaction (unlike SQLite), so the
        # insert gets its own savepoint: a collision undoes only the insert.
        try:
            with self._conn.transaction():
                self.execute(sql, params)
        except psycopg.errors.UniqueViolation as exc:
            return UniqueViolation(unique_message(exc))
        return None


def unique_message(exc: psycopg.errors.UniqueViolation) -> str:
    """Names the constraint (e.g. ux_exec_retry_of) and the key, as jobs._twin_of expects."""
    return f"UNIQUE constraint {exc.diag.constraint_name} failed: {exc.diag.message_detail or exc}"


@contextmanager
def nul_refused() -> Iterator[None]:
    """A NUL character PostgreSQL refused, as the caller's error. The store's own checks refuse NUL
    before it gets here (store.store.check_encodable on writes and imports, store.transfer on copies,
    the lookups' own check), so this is the last line, for a path none of them foresaw."""
    try:
        yield
    except psycopg.DataError as exc:
        # psycopg's own refusal, before anything reaches the server (no SQLSTATE). A server error
        # merely quoting SQL with "IS NULL" in it (a trigger's overflow, say) is not one.
        if exc.sqlstate is not None or "NUL (0x00)" not in str(exc):
            raise
        raise InvalidInput(
            "text",
            "contains a NUL character (\\x00), which PostgreSQL cannot store",
            hint="Remove NUL characters from the record's text before sending it.",
        ) from exc
