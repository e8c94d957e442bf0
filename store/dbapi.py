"""The seam between write jobs and a database driver. Jobs speak `?`-placeholder SQL to a
`Tx`; each engine wraps its driver in one (sqlite3 today, psycopg for PostgreSQL), so the
rules for starting, finishing and applying events are written once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


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


# ---- reads -------------------------------------------------------------------------------

Query = tuple[str, Sequence[Any]]

ReadPlan = Generator[Query, list[Any], T]
"""A read written once for both engines: a generator that yields each statement (`?` SQL and its
parameters), is sent back that statement's rows, and returns the answer. It does no I/O itself,
so each engine runs it in one read transaction its own way: SQLite on a reader's thread in a
single hand-off (one per statement costs ~0.1 ms each here), PostgreSQL statement by statement
on the event loop."""


def run_plan(plan: ReadPlan[T], fetch: Callable[[str, Sequence[Any]], list[Any]]) -> T:
    """Drive `plan` to its answer, fetching each statement's rows with `fetch`."""
    try:
        query = next(plan)
        while True:
            query = plan.send(fetch(*query))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    finally:
        plan.close()


async def run_plan_async(plan: ReadPlan[T], fetch: Callable[[str, Sequence[Any]], Awaitable[list[Any]]]) -> T:
    """`run_plan` for a driver whose fetch is awaited (psycopg's async connections)."""
    try:
        query = next(plan)
        while True:
            query = plan.send(await fetch(*query))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    finally:
        plan.close()
