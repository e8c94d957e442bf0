"""`failure_stacks`: every failure ever recorded, counted per stack_hash, kept by triggers on
executions in the transaction that changes them (migration 0007).

    per_task = 0, task_id = ''       one row per stack_hash, over all tasks
    per_task = 1, task_id = <task>   one row per (task, stack_hash)

Each row holds the count, the first and last started_us, and `last_seq`: the latest failure of
the group by (started_us, seq), its example. tasks_last_failed with no time window reads these
rows, so its answer costs O(groups) rather than a GROUP BY over every failure ever.

Triggers rather than the write jobs keep it, so no path can forget it: inserts, finishes, imports,
prune, and the benchmark's raw deletes all go through them. A failure is counted when it has
status 'failed' and a stack_hash (the store always sets one). When a counted row leaves, its
group's count drops, and the first/last are read again from the indexes made here,
only when the row that left was the group's first or last."""

from __future__ import annotations

from typing import Literal

Dialect = Literal["sqlite", "postgres"]

_TABLE = """
CREATE TABLE failure_stacks (
    per_task    {int} NOT NULL CHECK (per_task IN (0, 1)),
    task_id     TEXT NOT NULL,
    stack_hash  TEXT NOT NULL,
    n           {int} NOT NULL,
    first_us    {int} NOT NULL,
    last_us     {int} NOT NULL,
    last_seq    {int} NOT NULL,
    PRIMARY KEY (per_task, task_id, stack_hash)
)"""

INDEXES = (
    # The status indexes again with stack_hash at the end: failures in a time window (all tasks,
    # or one task) then come from the index alone, for the error patterns GROUP BY, for
    # unique_errors' latest per stack, and for the triggers' first/last. Replaced rather than
    # added beside, so a write updates no more indexes than before.
    "DROP INDEX ix_exec_status",
    "DROP INDEX ix_exec_task_status",
    "CREATE INDEX ix_exec_status_stack ON executions (status, started_us DESC, seq DESC, stack_hash)",
    "CREATE INDEX ix_exec_task_status_stack ON executions (task_id, status, started_us DESC, seq DESC, "
    "stack_hash)",
)

_GROUPED = (
    "INSERT INTO failure_stacks (per_task, task_id, stack_hash, n, first_us, last_us, last_seq) "
    "SELECT {scope}, stack_hash, COUNT(*), MIN(started_us), MAX(started_us), "
    "MAX(CASE WHEN rn = 1 THEN seq END) FROM (SELECT task_id, stack_hash, started_us, seq, ROW_NUMBER() "
    "OVER (PARTITION BY {partition} ORDER BY started_us DESC, seq DESC) AS rn FROM executions "
    "WHERE status = 'failed' AND stack_hash IS NOT NULL) AS f GROUP BY {partition}"
)
BACKFILL = (
    _GROUPED.format(scope="0, ''", partition="stack_hash"),
    _GROUPED.format(scope="1, task_id", partition="task_id, stack_hash"),
)

# ---- the triggers' statements, for a row `{r}` (NEW or OLD) ------------------------------

_ADD = (
    "INSERT INTO failure_stacks (per_task, task_id, stack_hash, n, first_us, last_us, last_seq) VALUES "
    "(0, '', {r}.stack_hash, 1, {r}.started_us, {r}.started_us, {r}.seq), "
    "(1, {r}.task_id, {r}.stack_hash, 1, {r}.started_us, {r}.started_us, {r}.seq) "
    "ON CONFLICT (per_task, task_id, stack_hash) DO UPDATE SET n = failure_stacks.n + 1, "
    "first_us = {least}(failure_stacks.first_us, excluded.first_us), "
    "last_us = {greatest}(failure_stacks.last_us, excluded.last_us), "
    "last_seq = CASE WHEN excluded.last_us > failure_stacks.last_us OR (excluded.last_us = "
    "failure_stacks.last_us AND excluded.last_seq > failure_stacks.last_seq) THEN excluded.last_seq "
    "ELSE failure_stacks.last_seq END"
)


def _remove(per_task: int, task_id: str, task_filter: str) -> tuple[str, ...]:
    """Take {r} out of one scope's group: the count down (the group gone at 0), and its first and
    last read again when {r} was one of them. COALESCE keeps the old value when no failure is
    left: then the count deletes the group (on PostgreSQL the row triggers of a multi-row DELETE
    run after the whole statement, so a group it empties reaches 0 only at its last row's turn)."""
    group = f"per_task = {per_task} AND task_id = {task_id} AND stack_hash = {{r}}.stack_hash"
    failed = f"x.status = 'failed' AND x.stack_hash = {{r}}.stack_hash{task_filter}"
    first = f"SELECT x.started_us FROM executions AS x WHERE {failed} ORDER BY x.started_us, x.seq LIMIT 1"
    latest = f"FROM executions AS x WHERE {failed} ORDER BY x.started_us DESC, x.seq DESC LIMIT 1"
    return (
        f"UPDATE failure_stacks SET n = n - 1 WHERE {group}",
        f"DELETE FROM failure_stacks WHERE {group} AND n <= 0",
        f"UPDATE failure_stacks SET first_us = COALESCE(({first}), first_us) WHERE {group} "
        "AND first_us = {r}.started_us",
        f"UPDATE failure_stacks SET last_us = COALESCE((SELECT x.started_us {latest}), last_us), "
        f"last_seq = COALESCE((SELECT x.seq {latest}), last_seq) WHERE {group} AND last_seq = {{r}}.seq",
    )


_REMOVE = (*_remove(0, "''", ""), *_remove(1, "{r}.task_id", " AND x.task_id = {r}.task_id"))

_FUNCTIONS: dict[Dialect, dict[str, str]] = {
    "sqlite": {"least": "MIN", "greatest": "MAX"},
    "postgres": {"least": "LEAST", "greatest": "GREATEST"},
}


def _add(dialect: Dialect, r: str) -> str:
    return _ADD.format(r=r, **_FUNCTIONS[dialect])


def _removed(r: str) -> list[str]:
    return [statement.format(r=r) for statement in _REMOVE]


def _counted(r: str) -> str:
    return f"{r}.status = 'failed' AND {r}.stack_hash IS NOT NULL"


_MOVED = (
    "(OLD.stack_hash IS NOT NEW.stack_hash OR OLD.task_id IS NOT NEW.task_id "
    "OR OLD.started_us IS NOT NEW.started_us)"
)
_WATCHED = "status, stack_hash, task_id, started_us"


def _sqlite_trigger(name: str, event: str, when: str, body: list[str]) -> str:
    statements = "".join(f"{s};\n" for s in body)
    return f"CREATE TRIGGER {name} AFTER {event} ON executions WHEN {when}\nBEGIN\n{statements}END"


def sqlite_triggers() -> tuple[str, ...]:
    add, remove = [_add("sqlite", "NEW")], _removed("OLD")
    return (
        _sqlite_trigger("tr_failure_stacks_insert", "INSERT", _counted("NEW"), add),
        # A finish (running -> failed), or a counted row that moved to another group.
        _sqlite_trigger(
            "tr_failure_stacks_enter", f"UPDATE OF {_WATCHED}",
            f"{_counted('NEW')} AND (NOT ({_counted('OLD')}) OR {_MOVED})", add,
        ),
        _sqlite_trigger(
            "tr_failure_stacks_leave", f"UPDATE OF {_WATCHED}",
            f"{_counted('OLD')} AND (NOT ({_counted('NEW')}) OR {_MOVED})", remove,
        ),
        _sqlite_trigger("tr_failure_stacks_delete", "DELETE", _counted("OLD"), remove),
    )  # fmt: skip


def postgres_triggers() -> tuple[str, ...]:
    """One plpgsql function for the three events; each trigger's WHEN skips rows it cannot touch."""

    def block(r: str, statements: list[str]) -> str:
        body = "".join(f"      {s};\n" for s in statements)
        return f"    IF {_counted(r)} THEN\n{body}    END IF;\n"

    function = (
        "CREATE FUNCTION th_failure_stacks() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n"
        f"  IF TG_OP <> 'INSERT' THEN\n{block('OLD', _removed('OLD'))}  END IF;\n"
        f"  IF TG_OP <> 'DELETE' THEN\n{block('NEW', [_add('postgres', 'NEW')])}  END IF;\n"
        "  RETURN NULL;\nEND\n$$"
    )
    moved = _MOVED.replace(" IS NOT ", " IS DISTINCT FROM ")
    run = "FOR EACH ROW WHEN ({when}) EXECUTE FUNCTION th_failure_stacks()"
    return (
        function,
        "CREATE TRIGGER tr_failure_stacks_insert AFTER INSERT ON executions "
        + run.format(when=_counted("NEW")),
        f"CREATE TRIGGER tr_failure_stacks_update AFTER UPDATE OF {_WATCHED} ON executions "
        + run.format(
            when=f"(OLD.status = 'failed' OR NEW.status = 'failed') AND "
            f"(OLD.status IS DISTINCT FROM NEW.status OR {moved})"
        ),
        "CREATE TRIGGER tr_failure_stacks_delete AFTER DELETE ON executions "
        + run.format(when=_counted("OLD")),
    )


def statements(dialect: Dialect) -> tuple[str, ...]:
    """Migration 0007 in `dialect`: the table, the indexes, the backfill, then the triggers (all in
    the migration's one transaction, so no write falls between the backfill and the triggers)."""
    table = _TABLE.format(int="INTEGER" if dialect == "sqlite" else "BIGINT")
    triggers = sqlite_triggers() if dialect == "sqlite" else postgres_triggers()
    return (table, *INDEXES, *BACKFILL, *triggers)


REBUILD = ("DELETE FROM failure_stacks", *BACKFILL)
"""Recount from the executions (store.sqlite.derived.rebuild runs it for bulk loaders)."""
