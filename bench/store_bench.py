"""Benchmark of the experience store alone (no MCP): write throughput and read latency on a
database of 1,000,000 executions and 5,000,000 lifecycle events (issue 2, "Performance").

Run:  .venv/bin/python bench/store_bench.py               # full size (first run builds ~4 GiB)
      .venv/bin/python bench/store_bench.py --executions 20000   # smaller database
      .venv/bin/python bench/store_bench.py --quick        # smoke run, seconds

What it prints, and how to read it:

1. The database: built once (see bench/common.py for what it holds) and cached under
   bench/out/, keyed by size and schema; the build time is printed (or the cached one).
2. Reads: each store query run `--runs` times with varied arguments, round-robin across
   the queries (after a few untimed warm-up calls, on a warm OS page cache; a query far
   over its goal stops after 30 s of calls), median and p99 in milliseconds next to the
   goal: 2 ms per query, 5 ms for `last_failed`, which always computes the error patterns
   over every failure in its window (the issue's "patterns" figure is for a one-day window
   of ~2,400 failures). The verdict is on the median; "p99 over" flags a slow tail.
   Two raw sqlite3 rows give context: an indexed point query and the patterns SQL alone.
3. Writes: `--pairs` start+finish pairs (`await store.start()` then `await store.finish()`)
   from `--writers` concurrent coroutines into the big database, against a raw sqlite3
   baseline measured in the same run on the same file: one group-committing writer that
   issues the equivalent INSERT/upsert/UPDATE statements for the same number of concurrent
   clients (each round: every client's start in one transaction, then every client's
   finish in the next), with the store's pragmas (WAL, synchronous=FULL). rows/s counts
   execution row writes (an insert and an update per pair). The two take turns on halves of
   the same plan (baseline then store, then store then baseline), so a change of load on
   the machine hits both alike. The goal is store/baseline >= 0.70. The written rows are
   deleted again after each turn, so every turn starts from the file as built.

On PostgreSQL (issue 6, "The store benchmark runs on both backends and prints both"):

      .venv/bin/python bench/store_bench.py --database-url postgresql://127.0.0.1:5432/test
      .venv/bin/python bench/store_bench.py --backends sqlite,postgres   # both, then side by side

   The same generated history goes into a schema of that database (bench/pg_dataset.py: COPY,
   indexes and constraints made after the load, VACUUM ANALYZE), cached like the SQLite file as
   `bench_store_<executions>_<digest>` and reused by the next run (`--pg-drop` drops it after
   the run). The same read queries and the same write plan go through the same store; the
   baseline is the same statements as the SQLite one through one psycopg connection, one
   group-committing writer (each round's statements in one transaction that first takes the
   store's write advisory lock, as BEGIN IMMEDIATE takes SQLite's), with the server's own
   durability settings (synchronous_commit as configured, printed). The goals are the issue's
   SQLite ones, applied unchanged. The warm-up is pg_prewarm 'read' of every table and index
   (the extension is created in the benchmark's schema when the database lacks it).

Nothing here asserts a time; it measures and prints. The same figures go to
bench/out/store_bench.json (store_bench-N.json for another size; store_bench_postgres*.json
for PostgreSQL; none for --quick)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import common
from common import HOUR_US, Dataset, Latency, latency, print_table

from store import Store
from store.errors import StoreError
from store.ids import execution_id, session_id
from store.models import (
    ErrorInput,
    ExecutionDetail,
    ExecutionFilter,
    ExecutionPage,
    FinishRequest,
    LastFailed,
    StartRequest,
    TaskStatus,
    TraceView,
)
from store.sqlite import queries, rows
from store.timeutil import from_us, now_utc, to_us

DEFAULT_EXECUTIONS = 1_000_000
QUERY_GOAL_MS = 2.0
PATTERNS_GOAL_MS = 5.0
WRITE_GOAL_RATIO = 0.70
WRITE_TASK_PREFIX = "bench-write-"
STATUSES = ("running", "success", "failed", "partial", "cancelled")
READ_BUDGET_S, MIN_RUNS = 30.0, 30
DEFAULT_PG_URL = os.environ.get("TASK_HISTORY_BENCH_DATABASE_URL", "postgresql://127.0.0.1:5432/test")
BACKENDS = ("sqlite", "postgres")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    machine = common.machine()
    print_machine(machine)
    reports: dict[str, dict[str, Any]] = {}
    for backend in args.backends:
        if len(args.backends) > 1:
            print(f"\n======== {LABELS[backend]} ========")
        reports[backend] = run_backend(backend, args, machine)
    if len(reports) > 1:
        print_side_by_side(reports)
    for backend, report in reports.items():
        if args.quick:
            print(f"\nnot writing bench/out/store_bench*.json ({backend}): --quick is a smoke run")
        else:
            print(f"\nwrote {common.write_json(report_name(backend, args.executions), report)}")


LABELS = {"sqlite": "SQLite", "postgres": "PostgreSQL"}


def report_name(backend: str, executions: int) -> str:
    stem = "store_bench" if backend == "sqlite" else "store_bench_postgres"
    return f"{stem}.json" if executions == DEFAULT_EXECUTIONS else f"{stem}-{executions}.json"


def run_backend(backend: str, args: argparse.Namespace, machine: dict[str, Any]) -> dict[str, Any]:
    report: dict[str, Any] = {"machine": machine, "backend": backend}
    with open_target(backend, args) as target:
        report["server"] = target.server
        report["dataset"] = target.describe()
        target.remove_bench_writes()  # in case an earlier run was interrupted before cleaning up
        seconds, how = target.warm()
        print(f"warming the page cache: {seconds:.1f} s ({how})\n")
        report["reads"] = asyncio.run(measure_reads(target, args.runs))
        report["raw_reads"] = measure_raw_reads(target, args.runs)
        print_reads(report["reads"], report["raw_reads"])
        report["writes"] = measure_writes(target, args.pairs, args.writers)
        print_writes(report["writes"], target.raw_label)
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(
        f"\nload average at the end: {report['load_average_at_end']} (other work on the machine skews p99s)"
    )
    return report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--executions", type=int, default=DEFAULT_EXECUTIONS, help="executions in the database (5x events)"
    )
    parser.add_argument("--pairs", type=int, default=20_000, help="start+finish pairs in the write benchmark")
    parser.add_argument("--writers", type=int, default=100, help="concurrent writer coroutines")
    parser.add_argument("--runs", type=int, default=300, help="timed runs of each read query")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run: 2,000 executions, few runs")
    parser.add_argument(
        "--rebuild", action="store_true", help="build the database even if a cached one exists"
    )
    parser.add_argument(
        "--backends",
        help="comma-separated: sqlite, postgres or both "
        "(default: sqlite; postgres when --database-url is given)",
    )
    parser.add_argument(
        "--database-url",
        help=f"the PostgreSQL database to build the benchmark schema in (default for --backends "
        f"postgres: $TASK_HISTORY_BENCH_DATABASE_URL or {DEFAULT_PG_URL})",
    )
    parser.add_argument(
        "--pg-drop", action="store_true", help="drop the PostgreSQL benchmark schema after the run (no cache)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.executions, args.pairs, args.runs = 2_000, 500, 30
    if args.backends is None:
        args.backends = "postgres" if args.database_url else "sqlite"
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(args.backends) - set(BACKENDS))
    if unknown or not args.backends:
        parser.error(f"--backends takes sqlite and/or postgres, not {', '.join(unknown) or 'nothing'}")
    if args.database_url and not args.database_url.startswith(("postgresql://", "postgres://")):
        parser.error("--database-url must be a postgresql:// URL (the SQLite database is bench/out's file)")
    args.database_url = args.database_url or DEFAULT_PG_URL
    return args


# ---- printing the context --------------------------------------------------------------


def print_machine(m: dict[str, Any]) -> None:
    print(
        f"machine: {m['cores']} cores ({m['cpu']}), {m['memory_gb']} GiB, python {m['python']}, "
        f"sqlite {m['sqlite']}, {m['platform']}; load average {m['load_average']}"
    )


def describe_sqlite(ds: Dataset) -> dict[str, Any]:
    meta = ds.meta
    day_failures = common.failures_between(ds.path, meta["anchor_us"] - 24 * HOUR_US)
    size_gib = round(sum(p.stat().st_size for p in ds.path.parent.glob(ds.path.name + "*")) / 2**30, 2)
    return print_dataset(meta, ds.path.name, size_gib, ds.reused, day_failures)


def print_dataset(
    meta: dict[str, Any], where: str, size_gib: float, reused: bool, day_failures: int
) -> dict[str, Any]:
    how = "reused (built earlier in" if reused else "built in"
    print(f"database: {where}, {size_gib} GiB, {how} {meta['build_seconds']} s{')' if reused else ''}")
    print(
        f"  {meta['executions']:,} executions, {meta['events']:,} events, {len(meta['tasks'])} tasks "
        f"(busiest {meta['busy_task']}: {meta['busy_task_executions']:,}), {meta['failed']:,} failed, "
        f"{meta['running']:,} running ({meta['running_retries']} retrying), {meta['backfilled']:,} backfilled"
    )
    print(f"  history ends {meta['anchor']}; failures in its last 24 h: {day_failures:,}")
    scalars = {k: v for k, v in meta.items() if not isinstance(v, list)}  # not the id lists
    return scalars | {
        "file" if where.endswith(".db") else "schema": where,
        "size_gib": size_gib,
        "reused": reused,
        "tasks": len(meta["tasks"]),
        "failures_last_24h": day_failures,
    }


# ---- the backends: where the data is, raw SQL beside the store ----------------------------

RawRun = Callable[[str, Sequence[Any]], list[Any]]


class SqliteTarget:
    """bench/common.py's cached SQLite file."""

    backend, raw_label = "sqlite", "raw sqlite3"

    def __init__(self, ds: Dataset) -> None:
        self.ds, self.meta, self.url = ds, ds.meta, str(ds.path)
        self.server: dict[str, Any] = {"sqlite": sqlite3.sqlite_version}

    def describe(self) -> dict[str, Any]:
        return describe_sqlite(self.ds)

    def warm(self) -> tuple[float, str]:
        return common.warm_page_cache(self.ds.path), "the file read once"

    @contextlib.contextmanager
    def raw(self) -> Iterator[RawRun]:
        """A read-only connection: run(sql with ?, params) -> rows."""
        conn = sqlite3.connect(f"file:{self.ds.path}?mode=ro", uri=True, isolation_level=None)
        try:
            yield lambda sql, params: conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def remove_bench_writes(self) -> None:
        """Delete what the write benchmark added, so the cached database stays as built."""
        n = self.meta["executions"]
        conn = sqlite3.connect(self.ds.path, isolation_level=None, timeout=30)
        try:
            conn.execute("BEGIN IMMEDIATE")
            for table in common.DERIVED_TABLES:  # the store's derived rows of the writes (no FK cascade here)
                conn.execute(f"DELETE FROM {table} WHERE exec_seq > ?", (n,))
            conn.execute("DELETE FROM executions WHERE seq > ?", (n,))
            conn.execute("DELETE FROM tasks WHERE task_id LIKE ?", (WRITE_TASK_PREFIX + "%",))
            conn.execute("COMMIT")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()

    def raw_group_commit(self, plan: list[Pair], clients: int) -> WriteRun:
        """The same writes as plain SQL from one writer that commits each round of `clients`
        concurrent requests together: the rate SQLite itself allows on this machine."""
        starts, finishes = raw_statements(plan)
        conn = sqlite3.connect(self.ds.path, isolation_level=None)
        for pragma in ("journal_mode = WAL", "synchronous = FULL", "busy_timeout = 5000"):
            conn.execute(f"PRAGMA {pragma}")
        try:
            began = time.perf_counter()
            for at in range(0, len(plan), clients):
                for batch in (starts[at : at + clients], finishes[at : at + clients]):
                    conn.execute("BEGIN IMMEDIATE")
                    for statements in batch:
                        for sql, params in statements:
                            conn.execute(sql, params)
                    conn.execute("COMMIT")
            seconds = time.perf_counter() - began
        finally:
            conn.close()
        return WriteRun(pairs=len(plan), seconds=seconds, commits=2 * -(-len(plan) // clients))


class PostgresTarget:
    """bench/pg_dataset.py's cached schema in a PostgreSQL database."""

    backend, raw_label = "postgres", "raw psycopg"

    def __init__(self, ds: Any) -> None:
        import pg_dataset

        self.ds, self.meta, self.url = ds, ds.meta, ds.url
        with pg_dataset.connect(ds.url) as conn:
            self.server = pg_dataset.server_info(conn)
        host = ds.base_url.split("@")[-1].split("://")[-1]
        print(
            f"postgres: {self.server['server_version']} at {host}, "
            f"shared_buffers {self.server['shared_buffers']}, "
            f"synchronous_commit {self.server['synchronous_commit']}, fsync {self.server['fsync']}"
        )

    def describe(self) -> dict[str, Any]:
        import pg_dataset

        with pg_dataset.connect(self.url) as conn:
            size = pg_dataset.size_gib(conn)
            since = self.meta["anchor_us"] - 24 * HOUR_US
            found = conn.execute(
                "SELECT COUNT(*) FROM executions WHERE status = 'failed' AND started_us >= %s", (since,)
            ).fetchone()
        return print_dataset(self.meta, self.ds.schema, size, self.ds.reused, found[0] if found else 0)

    def warm(self) -> tuple[float, str]:
        import pg_dataset

        with pg_dataset.connect(self.url) as conn:
            return pg_dataset.warm(conn)

    @contextlib.contextmanager
    def raw(self) -> Iterator[RawRun]:
        import pg_dataset

        from store.postgres.tx import pg_sql

        with pg_dataset.connect(self.url) as conn:
            yield lambda sql, params: conn.execute(pg_sql(sql), params).fetchall()

    def remove_bench_writes(self) -> None:
        """Delete what the write benchmark added (failures and side_effects go by FK cascade),
        then VACUUM and CHECKPOINT: every turn starts from the schema as built, as on SQLite."""
        import pg_dataset

        with pg_dataset.connect(self.url) as conn:
            with conn.transaction():
                conn.execute("DELETE FROM executions WHERE seq > %s", (self.meta["executions"],))
                conn.execute("DELETE FROM tasks WHERE task_id LIKE %s", (WRITE_TASK_PREFIX + "%",))
            for table in ("executions", "tasks", "failures"):
                conn.execute(f"VACUUM {table}")
            with contextlib.suppress(Exception):
                conn.execute("CHECKPOINT")

    def raw_group_commit(self, plan: list[Pair], clients: int) -> WriteRun:
        """The SQLite baseline's statements through one psycopg connection: each round of
        `clients` concurrent requests in one transaction, under the store's write advisory lock."""
        import pg_dataset

        from store.postgres.locks import WRITE_LOCK, lock_sql
        from store.postgres.tx import pg_sql

        starts, finishes = raw_statements(plan)
        with pg_dataset.connect(self.url) as conn:
            began = time.perf_counter()
            for at in range(0, len(plan), clients):
                for batch in (starts[at : at + clients], finishes[at : at + clients]):
                    with conn.transaction():
                        conn.execute(lock_sql(WRITE_LOCK))
                        for statements in batch:
                            for sql, params in statements:
                                conn.execute(pg_sql(sql), params)
            seconds = time.perf_counter() - began
        return WriteRun(pairs=len(plan), seconds=seconds, commits=2 * -(-len(plan) // clients))


Target = SqliteTarget | PostgresTarget


@contextlib.contextmanager
def open_target(backend: str, args: argparse.Namespace) -> Iterator[Target]:
    if backend == "sqlite":
        yield SqliteTarget(common.dataset(args.executions, rebuild=args.rebuild))
        return
    import pg_dataset

    ds = pg_dataset.dataset(args.database_url, args.executions, rebuild=args.rebuild)
    try:
        yield PostgresTarget(ds)
    finally:
        if args.pg_drop:
            pg_dataset.drop(ds)
            print(f"dropped schema {ds.schema} (--pg-drop)")


# ---- reads -------------------------------------------------------------------------------

Timed = tuple[float, object]


@dataclass(frozen=True)
class Case:
    name: str
    goal_ms: float
    run: Callable[[random.Random], Awaitable[Timed]]


@dataclass(frozen=True)
class Samples:
    """Real ids and windows from the database to vary the arguments with."""

    anchor_us: int
    busy_task: str
    tasks: list[str]
    task_types: list[str]
    actors: list[str]
    span_ids: list[str]
    retry_traces: list[str]


def samples(target: Target, count: int = 1_000) -> Samples:
    with target.raw() as run:
        top = target.meta["executions"]
        seqs = random.Random(1).sample(range(1, top + 1), min(count, top))
        marks = ",".join("?" * len(seqs))
        spans = [
            r[0] for r in run(f"SELECT span_id FROM executions WHERE seq IN ({marks}) ORDER BY seq", seqs)
        ]
        retries = [
            r[0] for r in run("SELECT trace_id FROM executions WHERE retry_of IS NOT NULL ORDER BY seq", ())
        ]
    meta = target.meta
    return Samples(
        anchor_us=meta["anchor_us"],
        busy_task=meta["busy_task"],
        tasks=meta["tasks"],
        task_types=meta["task_types"],
        actors=meta["actors"],
        span_ids=spans,
        retry_traces=random.Random(2).sample(retries, min(count, len(retries))),
    )


async def clock(call: Awaitable[object]) -> Timed:
    began = time.perf_counter()
    result = await call
    return time.perf_counter() - began, result


def read_cases(store: Store, s: Samples) -> list[Case]:
    f, page, failed = ExecutionFilter, store.list_executions, store.last_failed
    normal = [t for t in s.tasks if t != s.busy_task]

    def day(r: random.Random) -> Any:  # the last ~24 h of the history, give or take an hour
        return from_us(s.anchor_us - 24 * HOUR_US + r.randrange(-HOUR_US, HOUR_US))

    def time_range(r: random.Random) -> ExecutionFilter:
        since = s.anchor_us - r.randrange(24 * HOUR_US, common.DAYS * 24 * HOUR_US)
        return f(since=from_us(since), until=from_us(since + r.randrange(HOUR_US, 7 * 24 * HOUR_US)))

    return [
        Case("list_executions()", QUERY_GOAL_MS, lambda r: clock(page())),
        Case(
            "list_executions(task_id=busiest)", QUERY_GOAL_MS, lambda r: clock(page(f(task_id=s.busy_task)))
        ),
        Case(
            "list_executions(task_id=other)",
            QUERY_GOAL_MS,
            lambda r: clock(page(f(task_id=r.choice(normal)))),
        ),
        Case(
            "list_executions(status=...)", QUERY_GOAL_MS, lambda r: clock(page(f(status=r.choice(STATUSES))))
        ),
        Case(
            "list_executions(task_type=...)",
            QUERY_GOAL_MS,
            lambda r: clock(page(f(task_type=r.choice(s.task_types)))),
        ),
        Case("list_executions(actor=...)", QUERY_GOAL_MS, lambda r: clock(page(f(actor=r.choice(s.actors))))),
        Case("list_executions(since, until)", QUERY_GOAL_MS, lambda r: clock(page(time_range(r)))),
        Case("list_executions(backfilled=True)", QUERY_GOAL_MS, lambda r: clock(page(f(backfilled=True)))),
        Case("list_executions(retrying=True)", QUERY_GOAL_MS, lambda r: clock(page(f(retrying=True)))),
        Case("list_executions(page 2 via cursor)", QUERY_GOAL_MS, lambda r: second_page(store, s, r)),
        Case("trace(retry chain)", QUERY_GOAL_MS, lambda r: clock(store.trace(r.choice(s.retry_traces)))),
        Case("last_failed(limit=10)", PATTERNS_GOAL_MS, lambda r: clock(failed(limit=10))),
        Case(
            "last_failed(task_id=...)", PATTERNS_GOAL_MS, lambda r: clock(failed(task_id=r.choice(s.tasks)))
        ),
        Case("last_failed(since=24h ago)", PATTERNS_GOAL_MS, lambda r: clock(failed(since=day(r)))),
        Case(
            "last_failed(unique_errors, since=24h)",
            PATTERNS_GOAL_MS,
            lambda r: clock(failed(since=day(r), unique_errors=True)),
        ),
        Case("get(span_id)", QUERY_GOAL_MS, lambda r: clock(store.get(r.choice(s.span_ids)))),
        Case("task_status(task_id)", QUERY_GOAL_MS, lambda r: clock(store.task_status(r.choice(s.tasks)))),
    ]


async def second_page(store: Store, s: Samples, r: random.Random) -> Timed:
    """Only the second page is timed; the first one (untimed) supplies its cursor."""
    filters = r.choice(
        [
            ExecutionFilter(),
            ExecutionFilter(task_id=s.busy_task),
            ExecutionFilter(status="failed"),
            ExecutionFilter(task_type=r.choice(s.task_types)),
            ExecutionFilter(actor=r.choice(s.actors)),
        ]
    )
    first = await store.list_executions(filters)
    return await clock(store.list_executions(filters, cursor=first.next_cursor))


async def measure_reads(target: Target, runs: int) -> list[dict[str, Any]]:
    s = samples(target)
    store = await Store.open(target.url)
    try:
        return await measure_cases(read_cases(store, s), runs)
    finally:
        await store.close()


async def measure_cases(cases: list[Case], runs: int) -> list[dict[str, Any]]:
    """Round-robin over the queries (a burst of load elsewhere on the machine then lands on
    all of them alike), after a few untimed calls of each. A query that has used up
    READ_BUDGET_S stops at MIN_RUNS or later, so one very slow query cannot take an hour."""
    rngs = {case.name: random.Random(case.name) for case in cases}
    for case in cases:
        for _ in range(max(runs // 20, 3)):
            await case.run(rngs[case.name])
    timed: dict[str, list[Timed]] = {case.name: [] for case in cases}
    for _ in range(runs):
        for case in cases:
            done = timed[case.name]
            if len(done) >= MIN_RUNS and sum(t for t, _ in done) > READ_BUDGET_S:
                continue
            done.append(await case.run(rngs[case.name]))
    return [read_result(c, latency([t for t, _ in timed[c.name]]), timed[c.name][-1][1]) for c in cases]


def read_result(case: Case, lat: Latency, last: object) -> dict[str, Any]:
    if lat.median_ms > case.goal_ms:
        verdict = "MISS"
    else:
        verdict = "PASS" if lat.p99_ms <= case.goal_ms else "PASS (p99 over)"
    return {
        "query": case.name,
        **asdict(lat),
        "goal_ms": case.goal_ms,
        "verdict": verdict,
        "example": answer(last),
    }


def answer(result: object) -> str:
    """What one call returned, in a few words (from the last timed run)."""
    if isinstance(result, ExecutionPage):
        return f"{result.returned} rows of {result.total:,}{'' if result.total_exact else '+'}"
    if isinstance(result, TraceView):
        return (
            f"{len(result.executions)} executions, {len(result.events)} events, {result.retry_count} retries"
        )
    if isinstance(result, LastFailed):
        return (
            f"{len(result.failures)} of {result.total_failures:,} failures, "
            f"{result.patterns_total} patterns ({len(result.error_patterns)} shown)"
        )
    if isinstance(result, ExecutionDetail):
        return f"1 execution, {len(result.events)} events"
    if isinstance(result, TaskStatus):
        return f"{result.state}, {result.attempts:,} attempts"
    return type(result).__name__


def measure_raw_reads(target: Target, runs: int) -> list[dict[str, Any]]:
    """Plain SQL on the engine's own driver, no store: the floor the store's latencies stand on."""
    s = samples(target)
    r = random.Random(3)
    with target.raw() as run:
        point = [_time_sql(run, *queries.execution_by_span(r.choice(s.span_ids))) for _ in range(runs)]
        day = [s.anchor_us - 24 * HOUR_US + r.randrange(-HOUR_US, HOUR_US) for _ in range(runs)]
        patterns = [_time_sql(run, *queries.error_patterns(None, since, None, 20)) for since in day]
    label = target.raw_label
    return [
        {"query": f"{label}: execution by span_id", **asdict(latency(point)), "goal_ms": None},
        {"query": f"{label}: error patterns SQL, 24h", **asdict(latency(patterns)), "goal_ms": None},
    ]


def _time_sql(run: RawRun, sql: str, params: list[Any]) -> float:
    began = time.perf_counter()
    run(sql, params)
    return time.perf_counter() - began


def print_reads(reads: list[dict[str, Any]], raw: list[dict[str, Any]]) -> None:
    print("reads: milliseconds over `runs` timed calls with varied arguments")
    body = [
        [x["query"], x["runs"], x["median_ms"], x["p99_ms"], x["goal_ms"], x["verdict"], x["example"]]
        for x in reads
    ]
    body += [[x["query"], x["runs"], x["median_ms"], x["p99_ms"], "-", "(context)", ""] for x in raw]
    print_table(["query", "runs", "median", "p99", "goal", "verdict", "e.g. returned"], body)


# ---- writes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    """One start+finish pair, decided before any clock starts."""

    task_id: str
    task_type: str
    actor: str
    span_id: str
    trace_id: str
    status: str
    error: common.ErrorKind | None
    message: str | None
    result: str | None


def make_pairs(count: int, seed: int = 7) -> list[Pair]:
    rng = random.Random(seed)
    uuid4 = common.uuid4_factory(rng)
    errors = common.error_catalog(random.Random(seed + 1), 40)
    made = []
    for i in range(count):
        status = "failed" if rng.random() < 0.1 else "success"
        error = rng.choice(errors) if status == "failed" else None
        made.append(
            Pair(
                task_id=f"{WRITE_TASK_PREFIX}{i % 300:03d}",
                task_type=rng.choice(common.TASK_TYPES),
                actor=rng.choice(common.ACTORS),
                span_id=uuid4(),
                trace_id=uuid4(),
                status=status,
                error=error,
                message=error.message.format(n=rng.randrange(100_000)) if error else None,
                result=None if error else f"success: {rng.randrange(500)} items processed",
            )
        )
    return made


@dataclass
class WriteRun:
    """One writer's timed share of the pairs."""

    pairs: int
    seconds: float
    commits: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def measure_writes(target: Target, pairs: int, writers: int, rounds: int = 2) -> dict[str, Any]:
    """Baseline and store take turns on slices of the same plan (B S, then S B, ...), so a
    load change on the machine hits both alike; every run starts from the database as built."""
    plan = make_pairs(pairs)
    print(
        f"\nwrites: {pairs:,} start+finish pairs from {writers} concurrent writers into "
        f"{target.meta['executions']:,} executions, in {rounds} alternating rounds ..."
    )
    runs: dict[str, list[WriteRun]] = {"baseline": [], "store": []}
    contenders = {
        "baseline": lambda part: target.raw_group_commit(part, writers),
        "store": lambda part: asyncio.run(store_writes(target.url, part, writers)),
    }
    try:
        for k in range(rounds):
            part = plan[k::rounds]
            for name in sorted(contenders, reverse=k % 2 == 1):
                runs[name].append(contenders[name](part))
                target.remove_bench_writes()
    finally:
        target.remove_bench_writes()
    baseline, store = summed(runs["baseline"]), summed(runs["store"])
    ratio = round(store["pairs_per_s"] / baseline["pairs_per_s"], 3)
    verdict = "PASS" if ratio >= WRITE_GOAL_RATIO else "MISS"
    return {
        "pairs": pairs,
        "writers": writers,
        "rounds": rounds,
        "baseline": baseline,
        "store": store,
        "ratio": ratio,
        "goal_ratio": WRITE_GOAL_RATIO,
        "verdict": verdict,
    }


def summed(runs: list[WriteRun]) -> dict[str, Any]:
    pairs, seconds = sum(r.pairs for r in runs), sum(r.seconds for r in runs)
    latencies = [t for r in runs for t in r.latencies]
    errors = [e for r in runs for e in r.errors]
    return {
        "seconds": round(seconds, 3),
        "pairs_per_s": round(pairs / seconds, 1),
        "rows_per_s": round(2 * pairs / seconds, 1),
        "commits": sum(r.commits for r in runs),
        "pair_latency": asdict(latency(latencies)) if latencies else None,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
    }


async def store_writes(url: str, plan: list[Pair], writers: int) -> WriteRun:
    requests = [(start_request(p), finish_request(p)) for p in plan]
    store = await Store.open(url)
    run = WriteRun(pairs=len(plan), seconds=0.0)

    async def writer(mine: list[tuple[StartRequest, FinishRequest]]) -> None:
        for start, finish in mine:
            began = time.perf_counter()
            try:
                await store.start(start)
                await store.finish(finish)
            except StoreError as exc:
                run.errors.append(str(exc))
                continue
            run.latencies.append(time.perf_counter() - began)

    try:
        began = time.perf_counter()
        await asyncio.gather(*(writer(requests[i::writers]) for i in range(writers)))
        run.seconds = time.perf_counter() - began
    finally:
        await store.close()
    return run


def start_request(p: Pair) -> StartRequest:
    return StartRequest(
        task_id=p.task_id, task_type=p.task_type, actor=p.actor, span_id=p.span_id, trace_id=p.trace_id
    )


def finish_request(p: Pair) -> FinishRequest:
    error = ErrorInput(type=p.error.type, message=p.message or "", stack=p.error.stack) if p.error else None
    return FinishRequest(span_id=p.span_id, status=p.status, error=error, result=p.result)  # type: ignore[arg-type]


_TASK_STARTED = (
    "INSERT INTO tasks (task_id, state, attempts, current_trace_id, current_span_id, started_us, updated_us) "
    "VALUES (?, 'in_progress', 1, ?, ?, ?, ?) ON CONFLICT (task_id) DO UPDATE SET state = 'in_progress', "
    "attempts = tasks.attempts + 1, current_trace_id = excluded.current_trace_id, "
    "current_span_id = excluded.current_span_id, completed_us = NULL, updated_us = excluded.updated_us"
)
_TASK_FINISHED = (
    "UPDATE tasks SET state = ?, completed_us = ?, result = ?, updated_us = ? "
    "WHERE task_id = ? AND current_span_id = ?"
)
_OUTCOME = (
    "UPDATE executions SET status = ?, ended_us = ?, duration_ms = ?, error_type = ?, error_message = ?, "
    "error_stack = ?, stack_hash = ?, result = ? WHERE span_id = ? AND status = 'running'"
)


Statements = list[tuple[str, tuple[Any, ...]]]


def raw_statements(plan: list[Pair]) -> tuple[list[Statements], list[Statements]]:
    template = common.execution_template()
    insert = common.insert_sql("executions", rows.EXECUTION_COLUMNS)
    detail = common.detail_variants(random.Random(5))[0]
    now_us = to_us(now_utc())
    starts, finishes = [], []
    for p in plan:
        started = from_us(now_us)
        row = template.row(
            {
                "execution_id": execution_id(p.task_id, started, p.span_id),
                "span_id": p.span_id,
                "trace_id": p.trace_id,
                "task_id": p.task_id,
                "task_slug": p.task_id,
                "task_type": p.task_type,
                "actor": p.actor,
                "started_us": now_us,
                "created_us": now_us,
                "detail": detail,
                "session_id": session_id(p.task_id, started, p.span_id),
            }
        )
        starts.append([(insert, row), (_TASK_STARTED, (p.task_id, p.trace_id, p.span_id, now_us, now_us))])
        end_us = now_us + 1_000
        error = p.error
        outcome = (
            p.status,
            end_us,
            1,
            error and error.type,
            p.message,
            error and error.stack,
            error and error.stack_hash,
            p.result,
            p.span_id,
        )
        state = "failed" if error else "completed"
        finishes.append(
            [
                (_OUTCOME, outcome),
                (_TASK_FINISHED, (state, end_us, p.result or p.message, end_us, p.task_id, p.span_id)),
            ]
        )
    return starts, finishes


def print_writes(w: dict[str, Any], raw_label: str) -> None:
    base, store = w["baseline"], w["store"]
    body = [
        [
            f"{raw_label}, 1 group-committing writer, {base['commits']} commits",
            base["pairs_per_s"],
            base["rows_per_s"],
            base["seconds"],
        ],
        [
            f"store, {w['writers']} concurrent coroutines",
            store["pairs_per_s"],
            store["rows_per_s"],
            store["seconds"],
        ],
    ]
    print_table(["writer", "pairs/s", "rows/s", "seconds"], body)
    lat = store["pair_latency"] or {"median_ms": float("nan"), "p99_ms": float("nan")}
    print(
        f"store/baseline: {w['ratio']:.2f} (goal >= {w['goal_ratio']:.2f}) {w['verdict']}; "
        f"store pair latency median {lat['median_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms; "
        f"errors: {store['errors']}"
    )


def print_side_by_side(reports: dict[str, dict[str, Any]]) -> None:
    backends = list(reports)
    print(f"\n======== side by side: {' vs '.join(LABELS[b] for b in backends)} ========")
    print("reads: median and p99 in milliseconds")
    by_query = {b: {x["query"]: x for x in reports[b]["reads"]} for b in backends}
    body: list[list[Any]] = []
    for x in reports[backends[0]]["reads"]:
        row: list[Any] = [x["query"]]
        for b in backends:
            y = by_query[b][x["query"]]
            row += [y["median_ms"], y["p99_ms"], y["verdict"]]
        body.append([*row, x["goal_ms"]])
    for k, x in enumerate(reports[backends[0]]["raw_reads"]):
        row = ["raw driver: " + x["query"].split(": ", 1)[1]]
        for b in backends:
            y = reports[b]["raw_reads"][k]
            row += [y["median_ms"], y["p99_ms"], "(context)"]
        body.append([*row, "-"])
    headers = ["query"]
    for b in backends:
        headers += [f"{LABELS[b]} median", f"{LABELS[b]} p99", f"{LABELS[b]} verdict"]
    print_table([*headers, "goal"], body)
    print("\nwrites: start+finish pairs/s, the store against its own engine's raw baseline")
    rows_ = []
    for b in backends:
        w = reports[b]["writes"]
        rows_.append(
            [LABELS[b], w["baseline"]["pairs_per_s"], w["store"]["pairs_per_s"], w["ratio"], w["verdict"]]
        )
    print_table(["backend", "raw baseline pairs/s", "store pairs/s", "store/baseline", "verdict"], rows_)


if __name__ == "__main__":
    main()
