"""Moving a history between backends row for row: full scans in key order, and copy jobs that
insert what the target lacks. Engine-neutral (`?` SQL through a snapshot or a `store.dbapi.Tx`),
so `store.admin.copy_history` can read one engine and write the other.

Rows travel as raw column tuples, not models: a copy keeps what is stored (including task
columns that no model carries, such as last_event_us), and never refuses an old row that a
newer rule would reject. Each row is recognized by its natural key (span_id, event_id,
task_id), so copying again adds nothing; a row that collides with a *different* row in the
target is reported as a conflict, never dropped silently."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from store.dbapi import Tx
from store.sqlite.derived import index_execution
from store.sqlite.jobs import Job
from store.sqlite.rows import EVENT_COLUMNS, EXECUTION_COLUMNS, TASK_COLUMNS, execution_from

Table = Literal["executions", "events", "tasks", "span_exports"]
TABLES: tuple[Table, ...] = ("executions", "events", "tasks")
"""The history itself."""
LEDGERS: tuple[Table, ...] = ("span_exports",)
"""Bookkeeping about the history, copied after it: which spans `export --otlp` delivered where.
Without it, an export from the copy would send every span to the same collector again."""
Row = tuple[Any, ...]


@dataclass(frozen=True)
class _Spec:
    scan_key: str  # the keyset column a full scan walks in order
    first_key: Any  # below every real key
    columns: tuple[str, ...]
    identity: str  # the natural key that says "this row is already there"


SPECS: dict[Table, _Spec] = {
    "executions": _Spec("seq", 0, EXECUTION_COLUMNS, "span_id"),
    "events": _Spec("seq", 0, EVENT_COLUMNS, "event_id"),
    "tasks": _Spec("task_id", "", TASK_COLUMNS, "task_id"),
    # The key is (destination, span_id); keyset scans walk one column, so they walk this text,
    # which the length prefix makes unique whatever the destination holds (same SQL in both dialects).
    "span_exports": _Spec(
        "length(destination) || ':' || destination || span_id",
        "",
        ("destination", "span_id", "exported_us"),
        "span_id",
    ),
}


@dataclass
class TableReport:
    """What copying one table did."""

    copied: int = 0
    updated: int = 0
    skipped: int = 0
    conflicts: list[str] = field(default_factory=list)

    def merge(self, other: TableReport) -> None:
        self.copied += other.copied
        self.updated += other.updated
        self.skipped += other.skipped
        self.conflicts += other.conflicts


def scan_query(table: Table, after: Any, limit: int) -> tuple[str, list[Any]]:
    """Up to `limit` rows after `after` in key order; row[0] is the scan key, row[1:] the columns."""
    key, columns = SPECS[table].scan_key, ", ".join(SPECS[table].columns)
    return f"SELECT {key}, {columns} FROM {table} WHERE {key} > ? ORDER BY {key} LIMIT ?", [after, limit]


def copy_job(table: Table, rows: list[Row]) -> Job[TableReport]:
    """Store each row (columns in SPECS order) unless the target already has it."""
    copier = _COPIERS[table]

    def run(tx: Tx) -> TableReport:
        report = TableReport()
        for row in rows:
            values = dict(zip(SPECS[table].columns, row, strict=True))
            if (column := _with_nul(values)) is not None:
                report.conflicts.append(
                    f"{table} row {values[SPECS[table].identity]} was not copied: its {column} holds a NUL "
                    "character (\\x00), which the store no longer takes (PostgreSQL cannot hold it)"
                )
                continue
            copier(tx, values, report)
        return report

    return run


def _with_nul(row: dict[str, Any]) -> str | None:
    """The first column of `row` whose text holds NUL: a row written before writes refused it. It
    is refused on every target alike, as an import of it is (JSON columns hold a NUL escaped, which
    both engines store, so only a raw character counts)."""
    return next((c for c, v in row.items() if type(v) is str and "\x00" in v), None)


def _insert(tx: Tx, table: Table, row: dict[str, Any]) -> str | None:
    """Insert `row`; the collision's description when a unique key is taken."""
    columns = SPECS[table].columns
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    collision = tx.try_insert(sql, [row[c] for c in columns])
    return None if collision is None else str(collision)


def _update(tx: Tx, table: Table, row: dict[str, Any], guard: str, *guard_params: Any) -> None:
    """Overwrite the stored row with `row` where `guard` (an extra condition) holds."""
    spec = SPECS[table]
    names = [c for c in spec.columns if c != spec.identity]
    sql = f"UPDATE {table} SET {', '.join(f'{c} = ?' for c in names)} WHERE {spec.identity} = ? AND {guard}"
    tx.execute(sql, [*(row[c] for c in names), row[spec.identity], *guard_params])


def _copy_execution(tx: Tx, row: dict[str, Any], report: TableReport) -> None:
    found = tx.execute(
        "SELECT task_id, status FROM executions WHERE span_id = ?", (row["span_id"],)
    ).fetchone()
    if found is None:
        if (collision := _insert(tx, "executions", row)) is None:
            report.copied += 1
            _index(tx, row)
        else:
            report.conflicts.append(f"execution {row['span_id']} collides with another row ({collision})")
    elif found[0] != row["task_id"]:
        report.conflicts.append(f"execution {row['span_id']} belongs to task {found[0]} in the target")
    elif found[1] == "running" and row["status"] != "running":
        # Copied while it ran and finished since: bring the outcome over.
        _update(tx, "executions", row, "status = 'running'")
        report.updated += 1
        _index(tx, row)
    elif row["status"] not in ("running", found[1]):
        report.conflicts.append(
            f"execution {row['span_id']} finished as {found[1]} in the target, as {row['status']} here"
        )
    else:
        report.skipped += 1


def _index(tx: Tx, row: dict[str, Any]) -> None:
    """The failures and side_effects rows the write path would have made (store.sqlite.derived)."""
    index_execution(tx, execution_from([row[c] for c in EXECUTION_COLUMNS]))


def _copy_event(tx: Tx, row: dict[str, Any], report: TableReport) -> None:
    # Events are append-only and event_id is their only unique key: a collision is this event, or a
    # different one that took its id in the target, which is a conflict, never a silent skip.
    if _insert(tx, "events", row) is None:
        report.copied += 1
        return
    stored = tx.execute(STORED_EVENT, (row["event_id"],)).fetchone()
    if stored is not None and not same_event(stored, row):
        report.conflicts.append(
            f"event {row['event_id']} is a {stored[0]} of task {stored[1]} in the target, "
            f"not this {row['event_type']} of task {row['task_id']}"
        )
    else:
        report.skipped += 1


STORED_EVENT = "SELECT event_type, task_id, ts_us, data FROM events WHERE event_id = ?"
"""What tells two events under one event_id apart (same_event); a copy and an import both ask it."""


def same_event(stored: Row, row: dict[str, Any]) -> bool:
    """Whether a STORED_EVENT row is the event `row` (an events row by column name) describes."""
    event_type, task_id, ts_us, data = stored
    return (event_type, task_id, int(ts_us)) == (row["event_type"], row["task_id"], int(row["ts_us"])) and (
        _json(data) == _json(row["data"])
    )


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _copy_task(tx: Tx, row: dict[str, Any], report: TableReport) -> None:
    found = tx.execute("SELECT updated_us FROM tasks WHERE task_id = ?", (row["task_id"],)).fetchone()
    if found is None:
        _insert(tx, "tasks", row)  # task_id is its only key, just seen free
        report.copied += 1
    elif found[0] < row["updated_us"]:
        # The source's state is newer (it changed since the last copy): it wins.
        _update(tx, "tasks", row, "updated_us < ?", row["updated_us"])
        report.updated += 1
    else:
        report.skipped += 1


def _copy_span_export(tx: Tx, row: dict[str, Any], report: TableReport) -> None:
    # (destination, span_id) is the only unique key: a collision is this delivery, already recorded.
    if _insert(tx, "span_exports", row) is None:
        report.copied += 1
    else:
        report.skipped += 1


_COPIERS = {
    "executions": _copy_execution,
    "events": _copy_event,
    "tasks": _copy_task,
    "span_exports": _copy_span_export,
}


class TransferMixin:
    """`scan_rows` and `copy_rows` for a backend with a snapshot pool (`_readers`) and a
    group-committing writer (`_writer`); both engines have them."""

    _readers: Any
    _writer: Any

    async def scan_rows(self, table: Table, after: Any, limit: int) -> list[Row]:
        async with self._readers.snapshot() as snap:
            return [tuple(row) for row in await snap.all(*scan_query(table, after, limit))]

    async def copy_rows(self, table: Table, rows: list[Row]) -> TableReport:
        return await self._writer.submit(copy_job(table, rows))  # type: ignore[no-any-return]
