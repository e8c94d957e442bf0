"""The benchmark history on PostgreSQL: the same generated dataset as bench/common.py's SQLite
file (same generator, same seed, the store's own row templates), in a schema of its own in the
database a URL names (`store_bench.py --database-url postgresql://127.0.0.1:5432/test`).

The schema is a cache keyed like the SQLite file: `bench_store_<executions>_<digest>`, where
the digest covers common.schema_digest() (migrations, row layout, generator version), the
migrations' PostgreSQL spelling and this loader's version. A run reuses it; `--pg-drop` drops
it after the run; one for an older key is named and left alone (drop it by hand:
`DROP SCHEMA bench_store_... CASCADE`). A build goes into `<name>_building_<pid>` and is renamed
when complete, so a killed build is never mistaken for a cache (and the next build drops the
`_building_` schemas of processes that are gone: only those, which only this loader makes).
What the generator says about the history (its `meta`, plus the build time) is the schema's
COMMENT.

Building goes around the store, as the SQLite build does: the store opens the schema once (its
own migrations create the tables), the secondary indexes and the unique and foreign-key
constraints of the four big tables are dropped, the rows go in with COPY, and the two tables
the write path derives from executions (`failures`, `side_effects`; store.sqlite.derived) get
the rows `index_execution` would have written, computed with the same rules (store.analysis,
store.fingerprint). Row triggers the migrations put on executions (failure_stacks, migration
0007) fire during COPY as on any insert, so what they keep is filled by the store's own SQL.
Then indexes and constraints are re-created from their stored definitions
(pg_get_indexdef / pg_get_constraintdef), VACUUM ANALYZE sets statistics and the visibility
map, and a CHECKPOINT writes it all out, so the write benchmark does not pay for the build."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import common
import psycopg
from psycopg import sql

from store import Store
from store.analysis import failure_fingerprint, side_effects_of
from store.fingerprint import normalize_message
from store.rules import check_invariants
from store.sqlite import rows
from store.sqlite.schema import MIGRATIONS

LOADER_VERSION = 1
SCHEMA_PREFIX = "bench_store_"
BIG_TABLES = ("executions", "events", "failures", "side_effects")
BATCH = 50_000

_HERE = "current_schema()::text::regnamespace"  # the schema the connection's search_path names
_EXEC = {name: i for i, name in enumerate(rows.EXECUTION_COLUMNS)}


@dataclass
class PgDataset:
    base_url: str
    schema: str
    meta: dict[str, Any]
    reused: bool

    @property
    def url(self) -> str:
        """The URL the store opens: the base URL with this schema as its search_path."""
        return schema_url(self.base_url, self.schema)


def schema_url(base_url: str, schema: str) -> str:
    if "options=" in base_url:
        raise SystemExit(
            f"--database-url must not set `options` (the benchmark sets search_path): {base_url}"
        )
    sep = "&" if "?" in base_url else "?"
    return f"{base_url}{sep}options={quote(f'-c search_path={schema}')}"


def schema_digest() -> str:
    material = [
        common.schema_digest(),
        LOADER_VERSION,
        [(m.name, m.statements_for("postgres")) for m in MIGRATIONS],
    ]
    return hashlib.sha256(json.dumps(material, default=str).encode()).hexdigest()[:10]


def schema_name(executions: int) -> str:
    return f"{SCHEMA_PREFIX}{executions}_{schema_digest()}"


def connect(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True, application_name="task-history-bench")


def dataset(
    base_url: str, executions: int, *, rebuild: bool = False, log: Callable[[str], None] = print
) -> PgDataset:
    """The cached schema of `executions` executions in `base_url`'s database, built first if needed."""
    name = schema_name(executions)
    with connect(base_url) as conn:
        _drop_stale_builds(conn, log)
        found = conn.execute(
            "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = %s", (name,)
        ).fetchone()
        if found is not None and found[0] and not rebuild:
            return PgDataset(base_url, name, json.loads(found[0]), reused=True)
        if found is not None:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))
        _note_outdated(conn, name, executions, log)
    meta = build(base_url, name, executions, log)
    return PgDataset(base_url, name, meta, reused=False)


def drop(ds: PgDataset) -> None:
    with connect(ds.base_url) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(ds.schema)))


def _drop_stale_builds(conn: psycopg.Connection[Any], log: Callable[[str], None]) -> None:
    """`_building_<pid>` schemas of processes that are gone (a killed build of this loader)."""
    found = conn.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (SCHEMA_PREFIX + "%\\_building\\_%",)
    ).fetchall()
    for (name,) in found:
        pid = name.rsplit("_", 1)[-1]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            log(f"  dropping {name}, left by a build that did not finish")
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def _note_outdated(
    conn: psycopg.Connection[Any], current: str, executions: int, log: Callable[[str], None]
) -> None:
    found = conn.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s AND nspname <> %s AND nspname NOT LIKE %s",
        (f"{SCHEMA_PREFIX}{executions}\\_%", current, "%\\_building\\_%"),
    ).fetchall()
    for (name,) in found:
        log(f"  note: schema {name} is an outdated cache; DROP SCHEMA {name} CASCADE when unused")


# ---- building -------------------------------------------------------------------------------


def build(base_url: str, name: str, executions: int, log: Callable[[str], None]) -> dict[str, Any]:
    building = f"{name}_building_{os.getpid()}"
    began = time.perf_counter()
    with connect(base_url) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(building)))
    url = schema_url(base_url, building)
    asyncio.run(_create_schema(url))
    generator = common.Generator(executions, seed=executions)
    phases: dict[str, float] = {}
    with connect(url) as conn:
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET synchronous_commit = off")  # the load: one CHECKPOINT at the end makes it durable
        dropped = _drop_constraints_and_indexes(conn)
        step = time.perf_counter()
        counts = _load(conn, generator, log)
        phases["copy_s"] = time.perf_counter() - step
        step = time.perf_counter()
        log(f"  re-creating {len(dropped)} indexes and constraints ...")
        for statement in dropped:
            conn.execute(statement)
        phases["indexes_s"] = time.perf_counter() - step
        step = time.perf_counter()
        for table in _tables(conn):  # every table, the ones the store's triggers filled too
            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))
        phases["vacuum_analyze_s"] = time.perf_counter() - step
        step = time.perf_counter()
        try:
            conn.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            log(
                "  (no CHECKPOINT: it needs a superuser or pg_checkpoint; the write benchmark may pay for it)"
            )
        phases["checkpoint_s"] = time.perf_counter() - step
        check_sample(conn)
    seconds = round(time.perf_counter() - began, 1)
    meta = (
        generator.meta()
        | counts
        | {
            "build_seconds": seconds,
            "build_phases_s": {k: round(v, 1) for k, v in phases.items()},
            "built_at": datetime.now(UTC).isoformat(),
        }
    )
    with connect(base_url) as conn, conn.transaction():
        conn.execute(
            sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(building), sql.Identifier(name))
        )
        conn.execute(
            sql.SQL("COMMENT ON SCHEMA {} IS {}").format(sql.Identifier(name), sql.Literal(json.dumps(meta)))
        )
    log(
        f"  built schema {name} in {seconds} s ("
        + ", ".join(f"{k[:-2].replace('_', ' ')} {v:.1f} s" for k, v in phases.items())
        + ")"
    )
    return meta


def _tables(conn: psycopg.Connection[Any]) -> list[str]:
    found = conn.execute(
        f"SELECT relname FROM pg_class WHERE relnamespace = {_HERE} AND relkind = 'r' ORDER BY 1"
    )
    return [r[0] for r in found]


async def _create_schema(url: str) -> None:
    store = await Store.open(url)
    await store.close()


def _drop_constraints_and_indexes(conn: psycopg.Connection[Any]) -> list[str]:
    """Drop the foreign keys, unique constraints and secondary indexes of the big tables; return
    the statements that re-create them (indexes and unique constraints first, foreign keys last)."""
    constraints = conn.execute(
        "SELECT t.relname, c.conname, c.contype, pg_get_constraintdef(c.oid) FROM pg_constraint AS c "
        "JOIN pg_class AS t ON t.oid = c.conrelid "
        f"WHERE t.relnamespace = {_HERE} AND t.relname = ANY(%s) "
        "AND c.contype IN ('u', 'f') ORDER BY c.contype, c.conname",
        (list(BIG_TABLES),),
    ).fetchall()
    indexes = conn.execute(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index AS x "
        "JOIN pg_class AS i ON i.oid = x.indexrelid JOIN pg_class AS t ON t.oid = x.indrelid "
        f"WHERE t.relnamespace = {_HERE} AND t.relname = ANY(%s) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conindid = x.indexrelid "
        "AND c.conrelid = x.indrelid AND c.contype IN ('p', 'u', 'x')) ORDER BY i.relname",
        (list(BIG_TABLES),),
    ).fetchall()
    again: list[str] = [definition for _, definition in indexes]
    foreign: list[str] = []
    for table, name, kind, definition in sorted(constraints, key=lambda c: c[2] != "f"):  # foreign keys first
        conn.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
        (foreign if kind == "f" else again).append(
            f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}'
        )
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    return again + foreign


def _load(
    conn: psycopg.Connection[Any], generator: common.Generator, log: Callable[[str], None]
) -> dict[str, int]:
    exec_copy = f"COPY executions (seq, {', '.join(rows.EXECUTION_COLUMNS)}) FROM STDIN"
    event_copy = f"COPY events (seq, {', '.join(rows.EVENT_COLUMNS)}) FROM STDIN"
    failure_copy = (
        "COPY failures (exec_seq, fingerprint, error_type, message, task_id, actor, trace_id, started_us, "
        "fixed_us) FROM STDIN"
    )
    effect_copy = "COPY side_effects (exec_seq, kind, value, started_us) FROM STDIN"
    step = max(generator.executions // 10, 1)
    seq = event_seq = 0
    counts = {"failures_rows": 0, "side_effects_rows": 0}
    effects_of = _EffectsOf()
    for done, (execution_batch, event_batch) in generator.batches(BATCH):
        failures, effects = derived_rows(execution_batch, seq + 1, effects_of)
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy(exec_copy) as copy:
                for row in execution_batch:
                    seq += 1
                    copy.write_row((seq, *row))
            with cur.copy(event_copy) as copy:
                for row in event_batch:
                    event_seq += 1
                    copy.write_row((event_seq, *row))
            with cur.copy(failure_copy) as copy:
                for row in failures:
                    copy.write_row(row)
            with cur.copy(effect_copy) as copy:
                for row in effects:
                    copy.write_row(row)
        counts["failures_rows"] += len(failures)
        counts["side_effects_rows"] += len(effects)
        if done % step < len(execution_batch):
            log(f"  {done:>10,} executions, {done * common.EVENTS_PER_EXECUTION:>11,} events")
    with conn.transaction(), conn.cursor() as cur:
        with cur.copy(f"COPY tasks ({', '.join(rows.TASK_COLUMNS)}) FROM STDIN") as copy:
            for row in generator.task_rows():
                copy.write_row(row)
        # The identity columns go on from the last loaded row, as SQLite's rowid does.
        cur.execute("SELECT setval(pg_get_serial_sequence('executions', 'seq'), %s)", (seq,))
        cur.execute("SELECT setval(pg_get_serial_sequence('events', 'seq'), %s)", (event_seq,))
    log(
        f"  derived {counts['failures_rows']:,} failures and "
        f"{counts['side_effects_rows']:,} side_effects rows"
    )
    return counts


class _EffectsOf:
    """side_effects_of(io) per detail document; the shared variants parsed once."""

    def __init__(self) -> None:
        self._known: dict[str, list[tuple[str, str]]] = {}

    def __call__(self, detail: str) -> list[tuple[str, str]]:
        found = self._known.get(detail)
        if found is None:
            found = side_effects_of(json.loads(detail).get("io") or {})
            if len(self._known) < 1_000:
                self._known[detail] = found
        return found


def derived_rows(
    batch: Sequence[tuple[Any, ...]], first_seq: int, effects_of: Callable[[str], list[tuple[str, str]]]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The failures and side_effects rows store.sqlite.derived.index_execution writes for these
    executions (seq from `first_seq`). A batch holds whole traces, so a failure's fix (the first
    later top-level attempt of its trace that succeeded) is in the same batch."""
    status, attempt, worker, trace = _EXEC["status"], _EXEC["attempt"], _EXEC["worker_id"], _EXEC["trace_id"]
    started, detail = _EXEC["started_us"], _EXEC["detail"]
    successes: dict[str, list[int]] = defaultdict(list)
    for row in batch:
        if row[status] == "success" and row[attempt] > 1 and row[worker] is None:
            successes[row[trace]].append(row[started])
    failures, effects = [], []
    for k, row in enumerate(batch):
        seq = first_seq + k
        for kind, value in effects_of(row[detail]):
            effects.append((seq, kind, value, row[started]))
        error_type = row[_EXEC["error_type"]]
        if row[status] == "failed" and error_type is not None:
            message = row[_EXEC["error_message"]]
            fixed = min((s for s in successes.get(row[trace], ()) if s > row[started]), default=None)
            failures.append(
                (
                    seq,
                    failure_fingerprint(error_type, message, row[_EXEC["stack_hash"]]),
                    error_type,
                    normalize_message(message or ""),
                    row[_EXEC["task_id"]],
                    row[_EXEC["actor"]],
                    row[trace],
                    row[started],
                    fixed,
                )
            )
    return failures, effects


def check_sample(conn: psycopg.Connection[Any], size: int = 2_000) -> None:
    """Read random rows back through the store's own row mapping and invariant checks."""
    (top,) = conn.execute("SELECT MAX(seq) FROM executions").fetchone() or (0,)
    seqs = random.Random(0).sample(range(1, top + 1), min(size, top))
    for row in conn.execute(f"SELECT {rows.EXECUTION_SELECT} FROM executions WHERE seq = ANY(%s)", (seqs,)):
        check_invariants(rows.execution_from(row))
    for row in conn.execute(f"SELECT {rows.EVENT_SELECT} FROM events WHERE seq = ANY(%s)", (seqs,)):
        rows.event_from(row)
    for row in conn.execute(f"SELECT {rows.TASK_SELECT} FROM tasks"):
        rows.task_from(row)


# ---- about the database ---------------------------------------------------------------------


def server_info(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    settings = ("shared_buffers", "synchronous_commit", "fsync", "wal_level", "work_mem", "max_wal_size")
    found = dict(
        conn.execute(
            "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s)",
            (list(settings),),
        ).fetchall()
    )
    version = conn.execute("SHOW server_version").fetchone()
    return {"server_version": version[0] if version else "?", **{k: found.get(k) for k in settings}}


def size_gib(conn: psycopg.Connection[Any]) -> float:
    (total,) = conn.execute(
        "SELECT COALESCE(SUM(pg_total_relation_size(oid)), 0) FROM pg_class "
        f"WHERE relnamespace = {_HERE} AND relkind = 'r'"
    ).fetchone() or (0,)
    return round(int(total) / 2**30, 2)


def warm(conn: psycopg.Connection[Any]) -> tuple[float, str]:
    """Read every table and index of the schema into the OS page cache (pg_prewarm 'read', like
    the SQLite file's warm-up); returns (seconds, how)."""
    began = time.perf_counter()
    find = (
        "SELECT n.nspname FROM pg_extension AS e JOIN pg_namespace AS n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'pg_prewarm'"
    )
    where = conn.execute(find).fetchone()
    if where is None:
        with contextlib.suppress(psycopg.Error):  # into this schema: dropped with it
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        where = conn.execute(find).fetchone()
    relations = [
        r[0]
        for r in conn.execute(
            f"SELECT c.oid::regclass::text FROM pg_class AS c WHERE c.relnamespace = {_HERE} "
            "AND c.relkind IN ('r', 'i') UNION ALL SELECT t.oid::regclass::text FROM pg_class AS c "
            f"JOIN pg_class AS t ON t.oid = c.reltoastrelid WHERE c.relnamespace = {_HERE}"
        )
    ]
    if where is None:
        for table in BIG_TABLES:
            conn.execute(sql.SQL("SELECT COUNT(*) FROM {}").format(sql.Identifier(table)))
        return time.perf_counter() - began, "sequential scans of the tables (no pg_prewarm)"
    prewarm = sql.SQL("SELECT {}.pg_prewarm(%s::regclass, 'read')").format(sql.Identifier(where[0]))
    for relation in relations:
        conn.execute(prewarm, (relation,))
    return time.perf_counter() - began, f"pg_prewarm 'read' of {len(relations)} tables and indexes"
