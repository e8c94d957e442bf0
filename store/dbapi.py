"""The seam between write jobs and a database driver. Jobs speak `?`-placeholder SQL to a
`Tx`; each engine wraps its driver in one (sqlite3 today, psycopg for PostgreSQL), so the
rules for starting, finishing and applying events are written once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class UniqueViolation(Exception):
    """An insert collided with a unique constraint; the message names the constraint or column."""


class Cursor(Protocol):
    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Tx(Protocol):
    """One open transaction."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...

    def try_insert(self, sql: str, params: Sequence[Any]) -> UniqueViolation | None:
        """Run an INSERT; a unique-constraint collision is returned (and undone), not raised."""
        ...
