"""Helpers shared by the benchmarks: the machine they ran on, latency statistics, a plain
text table, the JSON output, and the benchmark database itself.

The database holds N executions and 5N lifecycle events that look like a year of real
agent history: a few hundred tasks (one of them very busy), retry chains, workers under
their task's trace, ~10% failures spread over ~200 distinct stack hashes (Zipf-like: a
few errors are most of them), backfilled history, and executions still running at the
end. Traffic grows over ~400 days so that the last day holds ~2.4% of it (about 2,400
failures at the default size), which is the window the "error patterns" goal is about.

Side effects: every execution's io comes from a dozen shared variants (a few report files
that many runs rewrite, tool calls), and ~5% of the tasks' own runs also write a file of
their own (`runs/<task_id>/<span>.md`), so "who wrote this file" has rare and common answers.

Building it goes around the store on purpose: the store opens the file once (so its own
migrations create the schema), then rows made by the store's own `execution_row` /
`event_row` templates are bulk-inserted with sqlite3 `executemany`, with the secondary
indexes dropped during the load and re-created from their stored SQL afterwards. The two
tables the write path derives from executions (`failures`, `side_effects`, store.sqlite.derived)
are then filled by the store's own backfill (`derived.rebuild`), as migration 0006 does. The
file is cached under bench/out/, keyed by size, schema and generator version, and reused; a
cache for an older key is left in place (another run may be using it) and named, to delete by
hand. bench/pg_dataset.py builds the same history into a PostgreSQL schema."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import math
import os
import platform
import random
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# `python bench/x.py` puts bench/ on sys.path, not the checkout. Add the checkout, so the
# benchmarks measure this tree's store/ even when the venv's editable install is stale.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))

from store import Store  # noqa: E402
from store.fingerprint import stack_hash  # noqa: E402
from store.ids import derived_idempotency_key, execution_id, session_id, slugify  # noqa: E402
from store.models import Execution, IOEffects, LifecycleEvent, Retrieval  # noqa: E402
from store.rules import check_invariants  # noqa: E402
from store.sqlite import derived, rows  # noqa: E402
from store.sqlite.jobs import new_task  # noqa: E402
from store.sqlite.schema import MIGRATIONS  # noqa: E402
from store.timeutil import from_us  # noqa: E402

OUT_DIR = Path(__file__).resolve().parent / "out"

# ---- machine and output ----------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write_json(name: str, data: dict[str, Any]) -> Path:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / name
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def print_table(headers: Sequence[str], body: Sequence[Sequence[Any]]) -> None:
    """Left-align text columns, right-align numbers."""
    cells = [[_cell(v) for v in row] for row in body]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], (int, float)) for row in body) for i in range(len(headers))]
    for row in (list(headers), ["-" * w for w in widths], *cells):
        line = (c.rjust(w) if n else c.ljust(w) for c, w, n in zip(row, widths, numeric, strict=True))
        print("  ".join(line).rstrip())


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


# ---- latency statistics ----------------------------------------------------------------


@dataclass(frozen=True)
class Latency:
    """Milliseconds over `runs` timed calls."""

    runs: int
    median_ms: float
    p99_ms: float
    max_ms: float


def latency(seconds: Sequence[float]) -> Latency:
    ordered = sorted(s * 1000 for s in seconds)
    p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]  # nearest rank
    return Latency(len(ordered), round(statistics.median(ordered), 3), round(p99, 3), round(ordered[-1], 3))


# ---- the benchmark database ------------------------------------------------------------

GENERATOR_VERSION = 4  # 4: failures and side_effects filled, per-run files
EVENTS_PER_EXECUTION = 5
DAYS = 400
DAY_US = 86_400 * 1_000_000
HOUR_US = 3_600 * 1_000_000
TASK_COUNT = 300
BUSY_TASK_SHARE = 0.12  # of traces: ~120,000 executions at the default size
ERROR_KINDS = 200
UNIFORM_SHARE = 0.5  # the rest of the traffic grows exponentially towards the end
GROWTH_PER_DAY = 0.0436  # makes the last day hold ~2.3% of all executions: ~2,400 failures
FAILED_FIRST, FAILED_RETRY, PARTIAL, CANCELLED = 0.10, 0.35, 0.02, 0.015
RETRY_CHANCE, MAX_ATTEMPTS = 0.5, 3
WORKER_CHANCE, WORKER_FAILED = 0.3, 0.04
BACKFILLED_BEFORE_DAYS, BACKFILLED_CHANCE = 330, 0.6
RUN_FILE_CHANCE = 0.05  # a task's own run that also writes runs/<task_id>/<span>.md
DERIVED_TABLES = ("failures", "side_effects")

TASK_TYPES = (
    "triage",
    "security_scan",
    "code_review",
    "dependency_update",
    "test_run",
    "deploy",
    "doc_sync",
    "data_export",
)
ACTORS = (
    "coordinator-master",
    "security-master",
    "dev-master",
    "qa-master",
    "ops-master",
    "docs-master",
    "data-master",
    "triage-master",
    "release-master",
    "infra-master",
    "research-master",
    "support-master",
)
SHARED_FILES = ("reports/0.json", "reports/3.json", "reports/6.json", "reports/9.json")  # ~8% of runs each
TOOL_CALLS = ("git.diff", "http.get")
WORKER_TYPES = ("scan-worker", "review-worker", "test-worker", "fetch-worker", "build-worker", "index-worker")


@dataclass(frozen=True)
class TaskSpec:
    task_id: str
    task_type: str
    task_name: str
    actor: str
    scheduled: bool


@dataclass(frozen=True)
class ErrorKind:
    type: str
    message: str  # with {n}: the number differs between occurrences, the stack_hash does not
    stack: str
    stack_hash: str


@dataclass
class Dataset:
    """The database file and what the queries need to know about its contents."""

    path: Path
    meta: dict[str, Any]
    reused: bool


def dataset(executions: int, *, rebuild: bool = False, log: Callable[[str], None] = print) -> Dataset:
    """The cached database of `executions` executions, built first if needed."""
    path = OUT_DIR / f"store-{executions}-{schema_digest()}.db"
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists() and not rebuild:
        return Dataset(path, json.loads(meta_path.read_text()), reused=True)
    meta = build(path, executions, log)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    _note_outdated(path, executions, log)
    return Dataset(path, meta, reused=False)


def _note_outdated(current: Path, executions: int, log: Callable[[str], None]) -> None:
    """Caches of the same size for an older schema or generator are never used again by this
    tree, but another checkout or a run still going may use them: name them, delete nothing."""
    old = [
        p
        for p in OUT_DIR.glob(f"store-{executions}-*.db")
        if not p.name.startswith(current.stem) and not p.name.endswith(".building")
    ]
    for p in old:
        log(
            f"  note: {p.name} ({p.stat().st_size / 2**30:.2f} GiB) is an outdated cache; "
            "delete it when no run uses it"
        )


def schema_digest() -> str:
    """Changes whenever the migrations, the row layout or this generator change."""
    material = [
        GENERATOR_VERSION,
        [(m.name, m.statements) for m in MIGRATIONS],
        rows.EXECUTION_COLUMNS,
        rows.EVENT_COLUMNS,
        rows.TASK_COLUMNS,
        repr(rows.execution_row(_template_execution())),
    ]
    return hashlib.sha256(json.dumps(material, default=str).encode()).hexdigest()[:10]


def build(path: Path, executions: int, log: Callable[[str], None]) -> dict[str, Any]:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    building = path.with_name(f"{path.name}.{os.getpid()}.building")  # two builds never share a file
    began = time.perf_counter()
    _create_schema(building)
    generator = Generator(executions, seed=executions)
    conn = _bulk_connection(building)
    try:
        indexes = _drop_secondary_indexes(conn)
        _load(conn, generator, log)
        base = [sql for table, sql in indexes if table not in DERIVED_TABLES]
        log(f"  re-creating {len(base)} secondary indexes ...")
        for sql in base:
            conn.execute(sql)
        step = time.perf_counter()
        conn.execute("BEGIN")
        derived.rebuild(conn)  # the store's own backfill of failures and side_effects
        conn.execute("COMMIT")
        for sql in (sql for table, sql in indexes if table in DERIVED_TABLES):
            conn.execute(sql)
        counts = {
            f"{t}_rows": conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in DERIVED_TABLES
        }
        log(
            f"  derived {counts['failures_rows']:,} failures and "
            f"{counts['side_effects_rows']:,} side_effects rows in {time.perf_counter() - step:.1f} s"
        )
        conn.executemany(insert_sql("tasks", rows.TASK_COLUMNS), generator.task_rows())
        conn.execute("PRAGMA journal_mode = WAL")
    finally:
        conn.close()
    _fsync(building)  # or the first checkpoint of the write benchmark pays for this build
    building.rename(path)
    check_sample(path)
    seconds = round(time.perf_counter() - began, 1)
    log(f"  built {path.name} ({path.stat().st_size / 2**30:.2f} GiB) in {seconds} s")
    meta = generator.meta() | counts
    return meta | {"build_seconds": seconds, "built_at": datetime.now(UTC).isoformat()}


def _create_schema(path: Path) -> None:
    async def open_and_close() -> None:
        store = await Store.open(str(path))
        await store.close()

    asyncio.run(open_and_close())
    # Store.close() leaves its writer's sqlite3 connection open until it is collected, and
    # an open WAL connection would keep the bulk load below from leaving WAL mode.
    gc.collect()


def _bulk_connection(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode = OFF", "synchronous = OFF", "cache_size = -1048576", "temp_store = MEMORY"):
        conn.execute(f"PRAGMA {pragma}")
    return conn


def _drop_secondary_indexes(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """Drop the named indexes of the big tables (a sort after the load is far faster than
    1M random inserts) and return (table, SQL) of each, exactly as the migrations wrote it."""
    found = conn.execute(
        "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        "AND tbl_name IN ('executions', 'events', 'failures', 'side_effects') ORDER BY name"
    ).fetchall()
    for name, _, _ in found:
        conn.execute(f'DROP INDEX "{name}"')
    return [(table, sql) for _, table, sql in found]


def insert_sql(table: str, columns: Sequence[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def _load(conn: sqlite3.Connection, generator: Generator, log: Callable[[str], None]) -> None:
    insert_execution = insert_sql("executions", rows.EXECUTION_COLUMNS)
    insert_event = insert_sql("events", rows.EVENT_COLUMNS)
    step = max(generator.executions // 10, 1)
    conn.execute("BEGIN")
    for done, (execution_batch, event_batch) in generator.batches(50_000):
        conn.executemany(insert_execution, execution_batch)
        conn.executemany(insert_event, event_batch)
        if done % step < len(execution_batch):
            log(f"  {done:>10,} executions, {done * EVENTS_PER_EXECUTION:>11,} events")
    conn.execute("COMMIT")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_sample(path: Path, size: int = 2_000) -> None:
    """Read random rows back through the store's own row mapping and invariant checks."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (top,) = conn.execute("SELECT MAX(seq) FROM executions").fetchone()
        seqs = random.Random(0).sample(range(1, top + 1), min(size, top))
        marks = ",".join("?" * len(seqs))
        for row in conn.execute(
            f"SELECT {rows.EXECUTION_SELECT} FROM executions WHERE seq IN ({marks})", seqs
        ):
            check_invariants(rows.execution_from(row))
        for row in conn.execute(f"SELECT {rows.EVENT_SELECT} FROM events WHERE seq IN ({marks})", seqs):
            rows.event_from(row)
        for row in conn.execute(f"SELECT {rows.TASK_SELECT} FROM tasks"):
            rows.task_from(row)
    finally:
        conn.close()


def warm_page_cache(path: Path) -> float:
    """Read the file once so the latency figures are warm-cache ones; returns seconds."""
    began = time.perf_counter()
    with path.open("rb") as f:
        while f.read(16 * 2**20):
            pass
    return time.perf_counter() - began


# ---- row templates: the store's own mapping decides the columns -------------------------

_T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _template_execution(**changes: Any) -> Execution:
    values: dict[str, Any] = {
        "execution_id": "x",
        "task_id": "t",
        "task_slug": "t",
        "trace_id": "t",
        "span_id": "s",
        "status": "running",
        "started_at": _T0,
        "session_id": "s",
        "created_at": _T0,
        "retrieval": Retrieval(memory_count=0),
        "scrubbed": True,
    }
    return Execution(**(values | changes))


class RowTemplate:
    """A row of the store's own making, with named columns replaced per row (fast, and a
    renamed or dropped column fails here instead of writing garbage)."""

    def __init__(self, columns: Sequence[str], template: Sequence[Any]) -> None:
        self._template = list(template)
        self._index = {name: i for i, name in enumerate(columns)}

    def row(self, values: dict[str, Any]) -> tuple[Any, ...]:
        row = self._template.copy()
        index = self._index
        for name, value in values.items():
            row[index[name]] = value
        return tuple(row)


def execution_template() -> RowTemplate:
    return RowTemplate(rows.EXECUTION_COLUMNS, rows.execution_row(_template_execution()))


def event_template() -> RowTemplate:
    event = LifecycleEvent(event_id="e", event_type="task_started", task_id="t", ts=_T0, recorded_at=_T0)
    return RowTemplate(rows.EVENT_COLUMNS, rows.event_row(event))


def detail_variants(rng: random.Random) -> list[str]:
    """A few realistic `detail` documents (retrieval provenance, io, attributes), made by
    the store's own `execution_row` so their shape is exactly what it writes."""
    variants = []
    for k in range(12):
        parents = [f"mem_{rng.randrange(10**6):06d}" for _ in range(k % 4)]
        e = _template_execution(
            retrieval=Retrieval(
                memory_count=len(parents),
                query="similar past failures" if parents else None,
                latency_ms=rng.randrange(2, 40),
                source=["episodic"] if parents else [],
            ),
            parents=parents,
            io=IOEffects(
                files_written=[SHARED_FILES[k // 3]] if k % 3 == 0 else [],
                tool_calls=list(TOOL_CALLS[: k % 3]),
            ),
            attributes={"priority": ("low", "normal", "high")[k % 3], "model": "agent-large"},
            task_config_digest=f"sha256:{k:064x}",
        )
        variants.append(rows.execution_row(e)[rows.EXECUTION_COLUMNS.index("detail")])
    return variants


def error_catalog(rng: random.Random, count: int = ERROR_KINDS) -> list[ErrorKind]:
    """`count` failure kinds with distinct stack hashes, made from plausible tracebacks."""
    kinds: list[ErrorKind] = []
    seen: set[str] = set()
    while len(kinds) < count:
        kind = _error_kind(rng)
        if kind.stack_hash not in seen:
            seen.add(kind.stack_hash)
            kinds.append(kind)
    return kinds


_ERRORS = (
    ("TimeoutError", "timed out after {n} ms waiting for the tool call"),
    ("ConnectionError", "connection reset by peer after {n} bytes"),
    ("KeyError", "'item_{n}'"),
    ("ValueError", "invalid literal for int() with base 10: '{n}x'"),
    ("RuntimeError", "worker exited with status {n}"),
    ("PermissionError", "[Errno 13] Permission denied: 'workspace/run_{n}/out.json'"),
    ("FileNotFoundError", "[Errno 2] No such file or directory: 'cache/{n}.json'"),
    ("json.decoder.JSONDecodeError", "Expecting value: line 1 column {n} (char {n})"),
    ("sqlite3.OperationalError", "database is locked (waited {n} ms)"),
    ("httpx.ReadTimeout", "read timed out after {n} ms"),
    ("AssertionError", "expected 200 rows, got {n}"),
    ("TypeError", "unsupported operand type(s) for +: 'int' and 'NoneType' (arg {n})"),
)
_FRAMES = (
    ("runner/scheduler.py", "run_task"),
    ("runner/scheduler.py", "_dispatch"),
    ("runner/sandbox.py", "execute"),
    ("agents/planner.py", "plan"),
    ("agents/planner.py", "revise"),
    ("agents/worker.py", "step"),
    ("agents/worker.py", "call_tool"),
    ("tools/git_ops.py", "clone"),
    ("tools/git_ops.py", "diff"),
    ("tools/http_fetch.py", "get"),
    ("tools/http_fetch.py", "_retry"),
    ("memory/retrieval.py", "search"),
    ("memory/index.py", "lookup"),
    ("integrations/github.py", "open_pr"),
    ("integrations/slack.py", "post"),
    ("reports/render.py", "to_json"),
)


def _error_kind(rng: random.Random) -> ErrorKind:
    error_type, message = rng.choice(_ERRORS)
    path = [rng.choice(_FRAMES) for _ in range(rng.randint(3, 6))]
    lines = ["Traceback (most recent call last):"]
    for module, function in path:
        lines.append(f'  File "/srv/agent/{module}", line {rng.randint(10, 900)}, in {function}')
        lines.append(f"    result = {function}(task, context)")
    lines.append(f"{error_type}: {message.format(n=rng.randint(1, 9999))}")
    stack = "\n".join(lines)
    return ErrorKind(error_type, message, stack, stack_hash(error_type, stack, message))


def run_file(task_id: str, span_id: str) -> str:
    """The file a run writes for itself (RUN_FILE_CHANCE of the tasks' own runs)."""
    return f"runs/{task_id}/{span_id[:8]}.md"


def zipf_weights(count: int, exponent: float) -> list[float]:
    return [1 / (rank**exponent) for rank in range(1, count + 1)]


def uuid4_factory(rng: random.Random) -> Callable[[], str]:
    """Valid, reproducible UUIDv4 strings, several times faster than uuid.uuid4()."""
    getrandbits = rng.getrandbits
    keep = ~((0xC000 << 48) | (0xF000 << 64)) & ((1 << 128) - 1)
    mark = (0x8000 << 48) | (4 << 76)

    def uuid4() -> str:
        h = f"{(getrandbits(128) & keep) | mark:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    return uuid4


# ---- the generator -----------------------------------------------------------------------

Shape = tuple[tuple[str, int], ...]
"""A trace before it has times: (status, worker count) per attempt."""


@dataclass
class _TaskTrack:
    """What the tasks table will say about one task (seed 004), gathered while generating."""

    top_level: int = 0
    first_us: int | None = None
    latest: dict[str, Any] | None = None
    last_event_us: int = 0
    terminal_event_id: str | None = None


@dataclass
class _Counts:
    failed: int = 0
    running: int = 0
    retrying: int = 0
    backfilled: int = 0
    by_task: dict[str, int] = field(default_factory=dict)


class Generator:
    """Executions and their events, oldest first, with reproducible randomness."""

    def __init__(self, executions: int, seed: int = 0, anchor_us: int | None = None) -> None:
        self.executions = executions
        self.rng = random.Random(seed)
        self.uuid4 = uuid4_factory(self.rng)
        self.anchor_us = anchor_us or (int(time.time()) * 1_000_000)
        self.tasks = _task_catalog(random.Random(seed + 1))
        self.errors = error_catalog(random.Random(seed + 2))
        self.details = detail_variants(random.Random(seed + 3))
        self._parsed_details = {d: json.loads(d) for d in self.details}
        self.execution_row = execution_template()
        self.event_row = event_template()
        self._error_weights = _cumulative(zipf_weights(len(self.errors), 1.1))
        normal = [
            w * (1 - BUSY_TASK_SHARE) / sum(zipf_weights(TASK_COUNT - 1, 0.8))
            for w in zipf_weights(TASK_COUNT - 1, 0.8)
        ]
        self._task_weights = _cumulative([BUSY_TASK_SHARE, *normal])
        self._tracks = {t.task_id: _TaskTrack() for t in self.tasks}
        self.counts = _Counts()

    # -- the whole history, in batches --

    def batches(self, size: int) -> Iterator[tuple[int, tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]]:
        """(executions so far, (execution rows, event rows)) in batches of about `size`."""
        shapes = self._shapes()
        starts = self._start_times(len(shapes))
        executions: list[tuple[Any, ...]] = []
        events: list[tuple[Any, ...]] = []
        done = 0
        for shape, start_us in zip(shapes, starts, strict=True):
            for execution in self._trace(shape, start_us, self._pick_task()):
                executions.append(self.execution_row.row(execution))
                events.extend(self._events(execution))
            if len(executions) >= size:
                done += len(executions)
                yield done, (executions, events)
                executions, events = [], []
        if executions:
            yield done + len(executions), (executions, events)

    def _shapes(self) -> list[Shape]:
        shapes, total = [], 0
        while total < self.executions:
            shape = self._shape()
            shapes.append(shape)
            total += sum(1 + workers for _, workers in shape)
        shapes[-1] = _trim(shapes[-1], total - self.executions)
        return shapes

    def _shape(self) -> Shape:
        rng, attempts = self.rng, []
        for attempt in range(1, MAX_ATTEMPTS + 1):
            status = self._outcome(FAILED_FIRST if attempt == 1 else FAILED_RETRY)
            workers = rng.randint(1, 3) if rng.random() < WORKER_CHANCE else 0
            attempts.append((status, workers))
            if status != "failed" or rng.random() >= RETRY_CHANCE:
                break
        return tuple(attempts)

    def _outcome(self, failed: float) -> str:
        r = self.rng.random()
        if r < failed:
            return "failed"
        if r < failed + PARTIAL:
            return "partial"
        return "cancelled" if r < failed + PARTIAL + CANCELLED else "success"

    def _start_times(self, count: int) -> list[int]:
        """Trace start times, oldest first: half uniform over DAYS, half growing towards the end."""
        rng, ages = self.rng, []
        for _ in range(count):
            age = rng.random() * DAYS if rng.random() < UNIFORM_SHARE else rng.expovariate(GROWTH_PER_DAY)
            while age >= DAYS:
                age = rng.expovariate(GROWTH_PER_DAY)
            ages.append(age)
        return sorted(self.anchor_us - int(age * DAY_US) - 1 for age in ages)

    def _pick_task(self) -> TaskSpec:
        return self.rng.choices(self.tasks, cum_weights=self._task_weights)[0]

    # -- one trace: attempts, each with its workers --

    def _trace(self, shape: Shape, start_us: int, task: TaskSpec) -> Iterator[dict[str, Any]]:
        rng = self.rng
        trace_id, retry_of = self.uuid4(), None
        backfilled = (
            start_us < self.anchor_us - BACKFILLED_BEFORE_DAYS * DAY_US and rng.random() < BACKFILLED_CHANCE
        )
        scheduled_us = start_us - rng.randrange(1_000, 5_000_000) if task.scheduled else None
        for attempt, (status, workers) in enumerate(shape, start=1):
            final = attempt == len(shape)
            top = self._execution(task, trace_id, attempt, retry_of, start_us, status, final=final)
            top.update(backfilled=int(backfilled), scheduled_us=scheduled_us)
            self._count(top)
            if scheduled_us is not None:
                top["idempotency_key"] = derived_idempotency_key(task.task_id, from_us(scheduled_us), attempt)
            self._track_top_level(task, top)
            yield top
            yield from self._workers(task, top, workers, backfilled)
            retry_of = top["span_id"]
            start_us = min(
                (top["ended_us"] or self.anchor_us) + rng.randrange(5, 300) * 1_000_000, self.anchor_us
            )

    def _execution(
        self,
        task: TaskSpec,
        trace_id: str,
        attempt: int,
        retry_of: str | None,
        start_us: int,
        status: str,
        *,
        final: bool,
    ) -> dict[str, Any]:
        rng = self.rng
        end_us = start_us + int(rng.lognormvariate(math.log(30), 1.2) * 1_000_000)
        if final and self._still_running(start_us, end_us, attempt):
            status, end_us = "running", None
        elif end_us >= self.anchor_us:
            end_us = max(start_us, self.anchor_us - 1_000_000)
        values = self._common(task.task_id, trace_id, start_us, end_us, status)
        if rng.random() < RUN_FILE_CHANCE:
            values["detail"] = self._with_run_file(values["detail"], task.task_id, values["span_id"])
        values.update(
            task_name=task.task_name,
            task_type=task.task_type,
            actor=task.actor,
            attempt=attempt,
            retry_of=retry_of,
            trigger="scheduled" if task.scheduled else "manual",
        )
        return values

    def _with_run_file(self, detail: str, task_id: str, span_id: str) -> str:
        """The variant `detail` with one more file written: this run's own report."""
        document = self._parsed_details[detail]
        io = document["io"] | {
            "files_written": [*document["io"]["files_written"], run_file(task_id, span_id)]
        }
        return rows.dumps(document | {"io": io})

    def _still_running(self, start_us: int, end_us: int, attempt: int) -> bool:
        if end_us >= self.anchor_us:
            return True
        recent = start_us >= self.anchor_us - 2 * HOUR_US
        return recent and self.rng.random() < (0.5 if attempt > 1 else 0.05)

    def _workers(
        self, task: TaskSpec, top: dict[str, Any], count: int, backfilled: bool
    ) -> Iterator[dict[str, Any]]:
        rng = self.rng
        limit_us = top["ended_us"] or self.anchor_us
        start_us = top["started_us"]
        for k in range(count):
            start_us = min(start_us + rng.randrange(500_000, 3_000_000), limit_us)
            last = k == count - 1
            if top["status"] == "running" and last:
                status, end_us = "running", None
            else:
                failed = (top["status"] == "failed" and last) or rng.random() < WORKER_FAILED
                status = "failed" if failed else "success"
                end_us = min(start_us + int(rng.lognormvariate(math.log(10), 1.0) * 1_000_000), limit_us)
            worker_type = rng.choice(WORKER_TYPES)
            worker_id = f"{worker_type}-{rng.randrange(200):03d}"
            values = self._common(task.task_id, top["trace_id"], start_us, end_us, status)
            values.update(
                task_type=worker_type,
                actor=worker_id,
                worker_id=worker_id,
                parent_span_id=top["span_id"],
                backfilled=int(backfilled),
            )
            self._count(values)
            yield values

    def _common(
        self, task_id: str, trace_id: str, start_us: int, end_us: int | None, status: str
    ) -> dict[str, Any]:
        """The columns every execution row sets, whatever its place in the trace."""
        rng = self.rng
        span_id = self.uuid4()
        started = from_us(start_us)
        values: dict[str, Any] = {
            "execution_id": execution_id(task_id, started, span_id),
            "span_id": span_id,
            "trace_id": trace_id,
            "task_id": task_id,
            "task_slug": slugify(task_id),
            "status": status,
            "started_us": start_us,
            "ended_us": end_us,
            "duration_ms": None if end_us is None else (end_us - start_us) // 1000,
            "session_id": session_id(task_id, started, span_id),
            "created_us": start_us + rng.randrange(100, 5_000),
            "input_tokens": rng.randrange(200, 40_000),
            "output_tokens": rng.randrange(50, 8_000),
            "detail": rng.choice(self.details),
        }
        values["cost"] = round((values["input_tokens"] * 3 + values["output_tokens"] * 15) / 1e6, 6)
        if status == "failed":
            kind = rng.choices(self.errors, cum_weights=self._error_weights)[0]
            values.update(
                error_type=kind.type,
                error_message=kind.message.format(n=rng.randrange(1, 100_000)),
                error_stack=kind.stack,
                stack_hash=kind.stack_hash,
            )
        elif status in ("success", "partial"):
            values["result"] = f"{status}: {rng.randrange(1, 500)} items processed"
        return values

    def _count(self, values: dict[str, Any]) -> None:
        c = self.counts
        c.by_task[values["task_id"]] = c.by_task.get(values["task_id"], 0) + 1
        c.failed += values["status"] == "failed"
        c.running += values["status"] == "running"
        c.retrying += values["status"] == "running" and values.get("attempt", 1) > 1
        c.backfilled += values["backfilled"]

    # -- lifecycle events: five per execution --

    def _events(self, e: dict[str, Any]) -> list[tuple[Any, ...]]:
        start, end = e["started_us"], e["ended_us"]
        until = end if end is not None else self.anchor_us
        if e.get("worker_id"):
            timeline = self._worker_timeline(e, start, until)
        else:
            timeline = self._task_timeline(e, start, until)
        made = []
        for event_type, ts_us, data in timeline:
            event_id = self.uuid4()
            made.append(
                self.event_row.row(
                    {
                        "event_id": event_id,
                        "event_type": event_type,
                        "task_id": e["task_id"],
                        "trace_id": e["trace_id"],
                        "span_id": e["span_id"],
                        "actor": e["actor"],
                        "ts_us": ts_us,
                        "data": data,
                        "recorded_us": ts_us + 1_000,
                    }
                )
            )
            self._track_event(e, event_type, ts_us, event_id)
        return made

    def _task_timeline(self, e: dict[str, Any], start: int, until: int) -> list[tuple[str, int, str]]:
        opening = "task_created" if e["attempt"] == 1 else "task_reassigned"
        opening_data = {"priority": "normal"} if e["attempt"] == 1 else {"reason": "retry after failure"}
        return [
            (opening, start - 3_000_000, rows.dumps(opening_data)),
            ("task_assigned", start - 1_000_000, rows.dumps({"assigned_to": e["actor"]})),
            ("task_started", start, rows.dumps({"attempt": e["attempt"]})),
            ("agent.checkpoint", start + (until - start) // 3, rows.dumps({"step": "plan ready"})),
            self._task_outcome(e, start + 2 * (until - start) // 3 if e["ended_us"] is None else until),
        ]

    def _task_outcome(self, e: dict[str, Any], ts_us: int) -> tuple[str, int, str]:
        status = e["status"]
        if status == "failed":
            return (
                "task_failed",
                ts_us,
                rows.dumps({"error": {"type": e["error_type"], "message": e["error_message"]}}),
            )
        if status == "cancelled":
            return "task_cancelled", ts_us, rows.dumps({"reason": "superseded by a newer run"})
        if status == "running":
            return "agent.heartbeat", ts_us, "{}"
        return "task_completed", ts_us, rows.dumps({"status": status, "result": e["result"]})

    def _worker_timeline(self, e: dict[str, Any], start: int, until: int) -> list[tuple[str, int, str]]:
        worker = {"worker_id": e["worker_id"]}
        span = until - start
        if e["status"] == "failed":
            outcome = ("worker_failed", rows.dumps(worker | {"error": {"type": e["error_type"]}}))
        elif e["status"] == "running":
            outcome = ("worker_progress", rows.dumps(worker | {"progress": 90}))
        else:
            outcome = ("worker_completed", rows.dumps(worker))
        return [
            ("worker_spawned", start - 500_000, rows.dumps(worker | {"worker_type": e["task_type"]})),
            ("worker_started", start, rows.dumps(worker)),
            ("worker_progress", start + span // 4, rows.dumps(worker | {"progress": 25})),
            ("worker_progress", start + 3 * span // 4, rows.dumps(worker | {"progress": 75})),
            (outcome[0], until if e["ended_us"] is not None else start + 7 * span // 8, outcome[1]),
        ]

    # -- the tasks table and the summary --

    def _track_top_level(self, task: TaskSpec, top: dict[str, Any]) -> None:
        track = self._tracks[task.task_id]
        track.top_level += 1
        track.first_us = min(track.first_us or top["started_us"], top["started_us"])
        if track.latest is None or top["started_us"] >= track.latest["started_us"]:
            track.latest = top

    def _track_event(self, e: dict[str, Any], event_type: str, ts_us: int, event_id: str) -> None:
        track = self._tracks[e["task_id"]]
        if ts_us >= track.last_event_us:
            track.last_event_us = ts_us
            if event_type in ("task_completed", "task_failed", "task_cancelled"):
                track.terminal_event_id = event_id

    def task_rows(self) -> list[tuple[Any, ...]]:
        states = {
            "running": "in_progress",
            "success": "completed",
            "partial": "completed",
            "failed": "failed",
            "cancelled": "cancelled",
        }
        made = []
        for task_id, track in self._tracks.items():
            if track.latest is None:
                continue
            latest = track.latest
            task = new_task(task_id, from_us(self.anchor_us))
            task.update(
                state=states[latest["status"]],
                attempts=track.top_level,
                assigned_to=latest["actor"],
                current_trace_id=latest["trace_id"],
                current_span_id=latest["span_id"],
                started_us=track.first_us,
                completed_us=latest["ended_us"],
                result=latest.get("result") or latest.get("error_message"),
                last_event_us=track.last_event_us,
                terminal_event_id=track.terminal_event_id,
                updated_us=max(track.last_event_us, latest["created_us"]),
            )
            made.append(tuple(task[name] for name in rows.TASK_COLUMNS))
        return made

    def meta(self) -> dict[str, Any]:
        by_task = sorted(self.counts.by_task.items(), key=lambda kv: -kv[1])
        return {
            "executions": self.executions,
            "events": self.executions * EVENTS_PER_EXECUTION,
            "anchor_us": self.anchor_us,
            "anchor": from_us(self.anchor_us).isoformat(),
            "days": DAYS,
            "failed": self.counts.failed,
            "running": self.counts.running,
            "running_retries": self.counts.retrying,
            "backfilled": self.counts.backfilled,
            "tasks": [task_id for task_id, _ in by_task],
            "busy_task": by_task[0][0],
            "busy_task_executions": by_task[0][1],
            "task_types": list(TASK_TYPES),
            "actors": list(ACTORS),
            "error_kinds": len(self.errors),
        }


def _task_catalog(rng: random.Random) -> list[TaskSpec]:
    tasks = []
    for i in range(TASK_COUNT):
        task_type = TASK_TYPES[i % len(TASK_TYPES)]
        tasks.append(
            TaskSpec(
                task_id=f"{task_type.replace('_', '-')}-{i:03d}",
                task_type=task_type,
                task_name=f"{task_type.replace('_', ' ').title()} #{i}",
                actor=rng.choice(ACTORS),
                scheduled=i != 0 and i % 5 in (1, 2),  # the busy task (i = 0) runs on demand
            )
        )
    return tasks


def _trim(shape: Shape, surplus: int) -> Shape:
    """Drop `surplus` rows from the end of a trace (workers first, then whole attempts)."""
    attempts = [list(a) for a in shape]
    while surplus > 0:
        if attempts[-1][1] > 0:
            attempts[-1][1] -= 1
        else:
            attempts.pop()
        surplus -= 1
    return tuple((status, workers) for status, workers in attempts)


def _cumulative(weights: Sequence[float]) -> list[float]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return out


def failures_between(path: Path, since_us: int, until_us: int | None = None) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        sql = "SELECT COUNT(*) FROM executions WHERE status = 'failed' AND started_us >= ? AND started_us < ?"
        return conn.execute(sql, (since_us, until_us or 2**62)).fetchone()[0]
    finally:
        conn.close()
