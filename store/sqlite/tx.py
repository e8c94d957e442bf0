"""The sqlite3 connection as a `store.dbapi.Tx`."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from store.dbapi import UniqueViolation


class SqliteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._conn.execute(sql, params)

    def try_insert(self, sql: str, params: Sequence[Any]) -> UniqueViolation | None:
        # A failed statement leaves SQLite's transaction usable, so no savepoint is needed.
        try:
            self._conn.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" not in str(exc):
                raise
            return UniqueViolation(str(exc))
        return None
