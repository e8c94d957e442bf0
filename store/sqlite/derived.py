"""Two index tables derived from executions, kept in step at write time and backfilled by
migration 0005:

    failures       one row per failed execution: its fingerprint (store.analysis), the
                   normalized message, who and when, and `fixed_us` once a later attempt of the
                   same trace succeeded. tasks_failure_patterns groups these without reading
                   the executions table.
    side_effects   one row per (execution, kind, value) its io declares: files written (and
                   each directory above them, as kind "dir"), tool calls, artifacts, scripts.
                   tasks_side_effects finds "who wrote reports/9.json" with one index seek.

Both reference executions(seq) ON DELETE CASCADE, so pruning executions prunes them too.
`index_execution` is engine-neutral (`?` SQL through a `store.dbapi.Tx`): the write jobs call it
after inserting or finishing an execution, on either engine. The SQLite backfill runs the same
Python rules through SQL functions registered on the migrating connection."""

from __future__ import annotations

import json
import sqlite3

from store.analysis import IO_FIELDS, directories_of, failure_fingerprint, side_effects_of
from store.dbapi import Tx
from store.fingerprint import normalize_message
from store.models import Execution
from store.sqlite import failure_groups, failure_stacks, run_tallies
from store.timeutil import to_us

_FAILURES = """
CREATE TABLE failures (
    exec_seq     {int} PRIMARY KEY REFERENCES executions (seq) ON DELETE CASCADE,
    fingerprint  TEXT NOT NULL,
    error_type   TEXT NOT NULL,
    message      TEXT NOT NULL,
    task_id      TEXT NOT NULL,
    actor        TEXT,
    trace_id     TEXT NOT NULL,
    started_us   {int} NOT NULL,
    fixed_us     {int}
)"""

_SIDE_EFFECTS = """
CREATE TABLE side_effects (
    exec_seq    {int} NOT NULL REFERENCES executions (seq) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('file', 'dir', 'tool', 'artifact', 'script')),
    value       TEXT NOT NULL,
    started_us  {int} NOT NULL
)"""

INDEXES = (
    # Made after the backfill, which is several times faster without it.
    "CREATE UNIQUE INDEX ux_side_effects ON side_effects (exec_seq, kind, value)",
    # Groups over a window (or all time), and each group's details, from the index alone.
    "CREATE INDEX ix_failures_fingerprint ON failures (fingerprint, started_us, task_id, actor, fixed_us)",
    "CREATE INDEX ix_failures_started ON failures (started_us, fingerprint, fixed_us)",
    "CREATE INDEX ix_failures_task ON failures (task_id, started_us, fingerprint, fixed_us)",
    "CREATE INDEX ix_failures_trace ON failures (trace_id, started_us)",
    "CREATE INDEX ix_side_effects_value ON side_effects (kind, value, started_us, exec_seq)",
    # Run statistics read this index only: for one task a range of it (counts, tokens, and
    # percentiles by ORDER BY duration_ms LIMIT 1 OFFSET k, even for 100,000+ executions),
    # across tasks a scan of it instead of the much wider table.
    "CREATE INDEX ix_exec_task_duration ON executions (task_id, duration_ms, started_us, status, attempt,"
    " worker_id, task_type, actor, input_tokens, output_tokens, cost)",
)

# The start of the first later top-level attempt of the trace that succeeded: a higher attempt,
# even one that started in the same microsecond (an import gives every attempt one started_at).
# `status || ''` keeps SQLite's planner on ix_exec_trace (trace_id, attempt, started_us): without
# statistics it would rather walk ix_exec_status_attempt through every success in the database.
_LATER_SUCCESS = (
    "SELECT MIN(r.started_us) FROM executions AS r WHERE r.trace_id = {trace} AND r.attempt > {attempt} "
    "AND r.status || '' = 'success' AND r.worker_id IS NULL AND r.started_us >= {started}"
)
_ATTEMPT_OF_FAILURE = "(SELECT a.attempt FROM executions AS a WHERE a.seq = failures.exec_seq)"
_SET_FIXED = (
    "UPDATE failures SET fixed_us = ("
    + _LATER_SUCCESS.format(
        trace="failures.trace_id", attempt=_ATTEMPT_OF_FAILURE, started="failures.started_us"
    )
    + ")"
)

# ---- migration 0005 ------------------------------------------------------------------------

_KIND_OF_IO_FIELD = (
    "CASE io.key WHEN 'files_written' THEN 'file' WHEN 'tool_calls' THEN 'tool' "
    "WHEN 'artifact_ids' THEN 'artifact' ELSE 'script' END"
)

BACKFILL = (
    "INSERT INTO side_effects (exec_seq, kind, value, started_us) "
    f"SELECT DISTINCT e.seq, {_KIND_OF_IO_FIELD}, j.value, e.started_us FROM executions AS e, "
    "json_each(e.detail, '$.io') AS io, json_each(io.value) AS j "
    "WHERE io.key IN ('files_written', 'tool_calls', 'artifact_ids', 'script_runs') AND j.type = 'text'",
    "INSERT INTO side_effects (exec_seq, kind, value, started_us) "
    "SELECT DISTINCT s.exec_seq, 'dir', d.value, s.started_us FROM side_effects AS s, "
    "json_each(th_directories(s.value)) AS d WHERE s.kind = 'file'",
    "INSERT INTO failures (exec_seq, fingerprint, error_type, message, task_id, actor, trace_id, started_us) "
    "SELECT seq, th_fingerprint(error_type, error_message, stack_hash), error_type, "
    "th_normalize(error_message), task_id, actor, trace_id, started_us "
    "FROM executions WHERE status = 'failed' AND error_type IS NOT NULL",
    _SET_FIXED,
)

REFIX = (_SET_FIXED,)
"""Migration 0010: fixed_us again for every failure, by attempt (before, a retry that succeeded in
the same microsecond as the failure did not count as its fix)."""


def sqlite_statements() -> tuple[str, ...]:
    return (_FAILURES.format(int="INTEGER"), _SIDE_EFFECTS.format(int="INTEGER"), *BACKFILL, *INDEXES)


def postgres_statements() -> tuple[str, ...]:
    """The tables and indexes in PostgreSQL's types. No backfill: PostgreSQL cannot call the
    Python rules from SQL, and no PostgreSQL database holds executions from before this step."""
    return (_FAILURES.format(int="BIGINT"), _SIDE_EFFECTS.format(int="BIGINT"), *INDEXES)


def register_functions(conn: sqlite3.Connection) -> None:
    """The SQL functions BACKFILL calls: the same rules as the write-time hook."""
    conn.create_function("th_fingerprint", 3, _fingerprint, deterministic=True)
    conn.create_function("th_normalize", 1, _normalize, deterministic=True)
    conn.create_function("th_directories", 1, _directories, deterministic=True)


def _fingerprint(error_type: str | None, message: str | None, stack_hash: str | None) -> str:
    return failure_fingerprint(error_type or "", message, stack_hash)


def _normalize(message: str | None) -> str:
    return normalize_message(message or "")


def _directories(path: str | None) -> str:
    return json.dumps(directories_of(path or ""), ensure_ascii=False)


def rebuild(conn: sqlite3.Connection) -> None:
    """Recompute both tables, and store.sqlite's failure_groups, failure_stacks and run_tallies,
    from the executions, for loaders that bulk-insert rows around the store (the benchmarks do).
    Runs in the caller's transaction, if any."""
    register_functions(conn)
    conn.execute("DELETE FROM side_effects")
    conn.execute("DELETE FROM failures")
    for statement in (*BACKFILL, *failure_groups.REBUILD, *failure_stacks.REBUILD, *run_tallies.REBUILD):
        conn.execute(statement)


# ---- write time --------------------------------------------------------------------------

_INSERT_EFFECT = (
    "INSERT INTO side_effects (exec_seq, kind, value, started_us) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (exec_seq, kind, value) DO NOTHING"
)
_LATER_SUCCESS_OF_NEW = _LATER_SUCCESS.format(trace="?", attempt="?", started="?")
_INSERT_FAILURE = (
    "INSERT INTO failures (exec_seq, fingerprint, error_type, message, task_id, actor, trace_id, started_us, "
    f"fixed_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ({_LATER_SUCCESS_OF_NEW})) ON CONFLICT (exec_seq) DO NOTHING"
)
_MARK_FIXED = (
    "UPDATE failures SET fixed_us = ? WHERE trace_id = ? AND started_us <= ? "
    f"AND {_ATTEMPT_OF_FAILURE} < ? AND (fixed_us IS NULL OR fixed_us > ?)"
)


def index_execution(tx: Tx, e: Execution, seq: int | None = None) -> None:
    """Bring failures and side_effects up to date with `e`, just inserted or finished (its row's
    `seq` when the caller has it). Idempotent: calling it again for the same execution adds nothing."""
    declared = any(getattr(e.io, field) for field in IO_FIELDS.values())  # most declare none
    effects = side_effects_of(e.io.model_dump()) if declared else []
    failed = e.status == "failed" and e.error is not None
    fixes = e.status == "success" and e.attempt > 1 and e.worker_id is None
    if not (effects or failed or fixes):
        return
    if seq is None:
        seq = tx.execute("SELECT seq FROM executions WHERE span_id = ?", (e.span_id,)).fetchone()[0]
    started_us = to_us(e.started_at)
    for kind, value in effects:
        tx.execute(_INSERT_EFFECT, (seq, kind, value, started_us))
    if failed and e.error is not None:
        fingerprint = failure_fingerprint(e.error.type, e.error.message, e.error.stack_hash)
        tx.execute(
            _INSERT_FAILURE,
            (
                seq,
                fingerprint,
                e.error.type,
                normalize_message(e.error.message),
                e.task_id,
                e.actor,
                e.trace_id,
                started_us,
                e.trace_id,
                e.attempt,
                started_us,
            ),
        )
    if fixes:
        tx.execute(_MARK_FIXED, (started_us, e.trace_id, started_us, e.attempt, started_us))
