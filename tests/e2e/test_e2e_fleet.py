"""Two real `task-history serve` processes on ONE PostgreSQL schema, and twenty real MCP clients over
streamable HTTP, ten on each, writing at the same moment: nothing is lost and nothing is stored twice.

The clients are released together by a barrier once all twenty are connected. Each one starts and
finishes five executions on task ids that all clients share (so the two servers update the same task
rows), starts the one idempotency key every client sends and a key it shares with one client of the
other server (then finishes both, so the same finish arrives twice), logs five events plus one whose
event_id a client of the other server also sends, and takes its turn in one retry chain that all
twenty race to extend. Afterwards the rows in PostgreSQL are counted and compared with what the
servers acknowledged.

Both servers are started at the same moment on an empty schema, so they also migrate it at once
(store.postgres.schema serializes that with an advisory lock)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import psycopg
import pytest
from conftest import ServerProcess, launch_server, stop_server, wait_until_healthy
from mcp import Client
from tool_support import ok

from store.sqlite.schema import MIGRATIONS

pytestmark = pytest.mark.postgres

CLIENTS = 20
PAIRS_PER_CLIENT = 5
EVENTS_PER_CLIENT = 5
SHARED_TASKS = 5
EVERYONE_KEY = "nightly-report-2025-11-04"
T0 = datetime(2025, 11, 4, tzinfo=UTC)
TIMEOUT_S = 180


@contextmanager
def two_servers(database_url: str, logs: Path) -> Iterator[list[ServerProcess]]:
    """Two servers launched at the same moment (each migrates the schema at start if it must)."""
    servers = [launch_server(database_url, logs / f"server-{n}.log") for n in range(2)]
    try:
        for server in servers:
            wait_until_healthy(server.base_url, process=server)
        yield servers
    finally:
        for server in servers:
            stop_server(server)


@pytest.fixture
def fleet(postgres_url: str, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    """Two servers on a fresh, empty schema of this test's own, so every row in it is this test's."""
    with two_servers(postgres_url, tmp_path) as servers:
        yield servers


@pytest.fixture(scope="module")
def shared_fleet(
    module_postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[ServerProcess]]:
    """Two servers started together on an empty schema, shared by the tests that only look."""
    with two_servers(module_postgres_url, tmp_path_factory.mktemp("fleet")) as servers:
        yield servers


def rows(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params or None).fetchall()  # None: a bare % (LIKE) is not a placeholder


# ---- what each client does -----------------------------------------------------------------


@dataclass
class Acks:
    """What the servers acknowledged, across all clients."""

    pair_spans: list[str] = field(default_factory=list)
    keyed_starts: dict[str, list[tuple[str, bool]]] = field(default_factory=dict)  # key -> (span, duplicate)
    keyed_finishes: dict[str, list[bool]] = field(default_factory=dict)  # key -> already_finished
    events: list[str] = field(default_factory=list)
    shared_events: dict[str, list[bool]] = field(default_factory=dict)  # event_id -> duplicate
    retries: list[str] = field(default_factory=list)


async def start_and_finish_pairs(client: Client, n: int, acks: Acks) -> None:
    for k in range(PAIRS_PER_CLIENT):
        started = await ok(client, "tasks_start", task_id=f"shared-{(n + k) % SHARED_TASKS}", actor=f"c{n}")
        await ok(client, "tasks_finish", span_id=started["span_id"], status="success")
        acks.pair_spans.append(started["span_id"])


async def start_and_finish_keyed(client: Client, task_id: str, key: str, acks: Acks) -> None:
    """Start `key` (other clients, on both servers, send it too), then finish it: the first finish
    records the outcome, every later one finds the same outcome already there."""
    started = await ok(client, "tasks_start", task_id=task_id, idempotency_key=key)
    acks.keyed_starts.setdefault(key, []).append((started["span_id"], started["duplicate"]))
    finished = await ok(client, "tasks_finish", span_id=started["span_id"], status="success")
    acks.keyed_finishes.setdefault(key, []).append(finished["already_finished"])


async def log_events(client: Client, n: int, acks: Acks) -> None:
    for k in range(EVENTS_PER_CLIENT):
        # Times interleave across clients, so some events arrive after later ones (an anomaly each).
        ts = (T0 + timedelta(seconds=k * CLIENTS + n)).isoformat()
        logged = await ok(client, "tasks_log_event", event_type="acme.tick", task_id="ticking", ts=ts)
        acks.events.append(logged["event_id"])
    shared_id = f"handoff-note-{n // 2}"  # clients 2k and 2k+1 are on different servers
    logged = await ok(
        client,
        "tasks_log_event",
        event_type="acme.note",
        task_id="noted",
        event_id=shared_id,
        ts=T0.isoformat(),
    )
    acks.shared_events.setdefault(shared_id, []).append(logged["duplicate"])


async def extend_the_chain(client: Client, trace_id: str, acks: Acks) -> None:
    """Retry the chain's latest attempt; when another client (on either server) got there first, the
    store refuses with a conflict naming that retry (or, while that retry is still running, saying
    so), and this client tries the new latest one."""
    while True:
        trace = await ok(client, "tasks_by_trace", trace_id=trace_id, detail="summary")
        latest = max(trace["executions"], key=lambda e: e["attempt"])
        result = await client.call_tool("tasks_start", {"task_id": "chain", "retry_of": latest["span_id"]})
        if result.is_error:
            text = result.content[0].text  # type: ignore[union-attr]
            assert "already retried" in text or "still running" in text, text
            continue
        span_id = result.structured_content["span_id"]  # type: ignore[index]
        error = {"type": "Flaky", "message": "still flaky"}
        await ok(client, "tasks_finish", span_id=span_id, status="failed", error=error)
        acks.retries.append(span_id)
        return


async def one_client(
    url: str, mode: str, n: int, barrier: asyncio.Barrier, trace_id: str, acks: Acks
) -> None:
    async with Client(url, mode=mode) as client:
        await barrier.wait()  # all twenty connected: now everyone writes at once
        await start_and_finish_keyed(client, "nightly_report", EVERYONE_KEY, acks)
        await start_and_finish_keyed(client, "paired", f"pair-{n // 2}", acks)
        await start_and_finish_pairs(client, n, acks)
        await log_events(client, n, acks)
        await extend_the_chain(client, trace_id, acks)


async def first_attempt(url: str) -> dict[str, Any]:
    async with Client(url) as client:
        started = await ok(client, "tasks_start", task_id="chain")
        error = {"type": "Flaky", "message": "first"}
        return await ok(client, "tasks_finish", span_id=started["span_id"], status="failed", error=error)


# ---- the tests ---------------------------------------------------------------------------


async def test_two_servers_started_at_once_on_an_empty_schema_migrate_it_once_and_both_serve(
    shared_fleet: list[ServerProcess], module_postgres_url: str
) -> None:
    ledger = "SELECT name FROM schema_migrations ORDER BY name"
    assert [name for (name,) in rows(module_postgres_url, ledger)] == [m.name for m in MIGRATIONS]
    async with httpx2.AsyncClient(timeout=10) as http:
        for server in shared_fleet:
            assert (await http.get(f"{server.base_url}/healthz")).json()["database"] == "ok"


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_twenty_clients_on_two_servers_writing_at_once_lose_nothing_and_duplicate_nothing(
    fleet: list[ServerProcess], postgres_url: str, mode: str
) -> None:
    first = await first_attempt(fleet[0].mcp_url)
    acks, barrier = Acks(), asyncio.Barrier(CLIENTS)
    async with asyncio.timeout(TIMEOUT_S), asyncio.TaskGroup() as group:
        for n in range(CLIENTS):
            url = fleet[n % 2].mcp_url
            group.create_task(one_client(url, mode, n, barrier, first["trace_id"], acks))

    keyed = 1 + CLIENTS // 2
    expected = keyed + CLIENTS * PAIRS_PER_CLIENT + 1 + CLIENTS
    assert rows(postgres_url, "SELECT COUNT(*) FROM executions") == [(expected,)]
    assert rows(postgres_url, "SELECT COUNT(*) FROM executions WHERE status = 'running'") == [(0,)]
    check_pairs(postgres_url, acks)
    check_idempotency(postgres_url, acks)
    check_events(postgres_url, acks)
    check_chain(postgres_url, first, acks)


def check_pairs(url: str, acks: Acks) -> None:
    """Every acknowledged span is stored once, finished; no task row lost an update."""
    stored = rows(url, "SELECT span_id, status FROM executions WHERE task_id LIKE 'shared-%'")
    assert len(acks.pair_spans) == CLIENTS * PAIRS_PER_CLIENT == len(set(acks.pair_spans))
    assert sorted(span for span, _ in stored) == sorted(acks.pair_spans)
    assert {status for _, status in stored} == {"success"}
    # Each start read-modify-writes its task's row; a lost update would show as a short count.
    assert rows(url, "SELECT SUM(attempts) FROM tasks WHERE task_id LIKE 'shared-%'") == [(len(stored),)]


def check_idempotency(url: str, acks: Acks) -> None:
    """One execution per key, the same span in every answer, `duplicate` false exactly once; the
    finish recorded once and recognised as already recorded by everyone else."""
    assert len(acks.keyed_starts[EVERYONE_KEY]) == CLIENTS
    assert all(len(acks.keyed_starts[f"pair-{k}"]) == 2 for k in range(CLIENTS // 2))
    for key, answers in acks.keyed_starts.items():
        stored = rows(url, "SELECT span_id, status FROM executions WHERE idempotency_key = %s", key)
        assert len(stored) == 1 and stored[0][1] == "success", key
        assert {span for span, _ in answers} == {stored[0][0]}, key
        assert [duplicate for _, duplicate in answers].count(False) == 1, key
        assert acks.keyed_finishes[key].count(False) == 1, key


def check_events(url: str, acks: Acks) -> None:
    """Every acknowledged event once; a shared event_id once, new to exactly one of its two senders;
    `anomaly` set exactly on the events that committed after a later-timed one."""
    stored = rows(url, "SELECT event_id, ts_us, anomaly FROM events WHERE task_id = 'ticking' ORDER BY seq")
    assert len(acks.events) == CLIENTS * EVENTS_PER_CLIENT
    assert sorted(event_id for event_id, _, _ in stored) == sorted(acks.events)
    newest, late = 0, []
    for _, ts_us, anomaly in stored:  # in the order the writes committed
        late.append((ts_us < newest, bool(anomaly and "out of order" in anomaly)))
        newest = max(newest, ts_us)
    assert all(expected == flagged for expected, flagged in late)
    notes = Counter(
        event_id for (event_id,) in rows(url, "SELECT event_id FROM events WHERE task_id = 'noted'")
    )
    assert notes == Counter({event_id: 1 for event_id in acks.shared_events})
    assert all(sorted(answers) == [False, True] for answers in acks.shared_events.values())


def check_chain(url: str, first: dict[str, Any], acks: Acks) -> None:
    """One unbroken chain: attempts 1..21, each the retry of the one before, on the first's trace,
    every acknowledged retry in it once."""
    chain = rows(
        url,
        "SELECT span_id, attempt, retry_of, trace_id FROM executions WHERE task_id = 'chain' "
        "ORDER BY attempt",
    )
    assert [attempt for _, attempt, _, _ in chain] == list(range(1, CLIENTS + 2))
    assert [retry_of for _, _, retry_of, _ in chain[1:]] == [span for span, _, _, _ in chain[:-1]]
    assert {trace for _, _, _, trace in chain} == {first["trace_id"]}
    assert chain[0][0] == first["span_id"]
    assert sorted(span for span, _, _, _ in chain[1:]) == sorted(acks.retries)


async def test_a_handshake_era_session_lives_in_the_server_that_opened_it(
    shared_fleet: list[ServerProcess],
) -> None:
    """What the README's scaling-out section tells users of 2025-11-25 clients: the session id is
    only known to the process that issued it (another replica answers 404, "Session not found"), so
    a load balancer in front of several servers must keep such a client on one of them."""
    hello = {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "lb", "version": "1"},
    }
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello}
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    async with httpx2.AsyncClient(timeout=10) as http:
        opened = await http.post(shared_fleet[0].mcp_url, json=initialize, headers=headers)
        session = {
            **headers,
            "mcp-session-id": opened.headers["mcp-session-id"],
            "mcp-protocol-version": "2025-11-25",
        }
        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
        elsewhere = await http.post(shared_fleet[1].mcp_url, json=listing, headers=session)
        at_home = await http.post(shared_fleet[0].mcp_url, json=listing, headers=session)
    assert opened.status_code == 200
    assert elsewhere.status_code == 404 and "Session not found" in elsewhere.text
    assert at_home.status_code == 200 and "tasks_list" in at_home.text


def modern_call(tool: str, arguments: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """A self-contained 2026-07-28 tools/call: body and headers, no session, no handshake."""
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments, "_meta": meta},
    }
    headers = {
        "content-type": "application/json", "accept": "application/json, text/event-stream",
        "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": tool,
    }  # fmt: skip
    return body, headers


async def test_a_2026_07_28_client_can_start_on_one_server_and_finish_on_the_other(
    shared_fleet: list[ServerProcess],
) -> None:
    """The stateless era needs no affinity: each request carries all it needs, so a load balancer
    may send every request of one client to a different replica."""
    async with httpx2.AsyncClient(timeout=10) as http:
        body, headers = modern_call("tasks_start", {"task_id": "roaming"})
        started = (await http.post(shared_fleet[0].mcp_url, json=body, headers=headers)).json()["result"]
        span_id = started["structuredContent"]["span_id"]
        body, headers = modern_call("tasks_finish", {"span_id": span_id, "status": "success"})
        finished = (await http.post(shared_fleet[1].mcp_url, json=body, headers=headers)).json()["result"]
        body, headers = modern_call("tasks_list", {"task_id": "roaming"})
        listed = (await http.post(shared_fleet[0].mcp_url, json=body, headers=headers)).json()["result"]
    assert not finished["isError"] and finished["structuredContent"]["status"] == "success"
    page = listed["structuredContent"]
    assert page["total"] == 1 and page["executions"][0]["status"] == "success"


async def test_a_cursor_from_one_server_pages_on_the_other(shared_fleet: list[ServerProcess]) -> None:
    """Cursors carry their position (started_at, seq) and nothing of the process that made them."""
    async with httpx2.AsyncClient(timeout=10) as http:

        async def call(server: ServerProcess, tool: str, **arguments: Any) -> dict[str, Any]:
            body, headers = modern_call(tool, arguments)
            result = (await http.post(server.mcp_url, json=body, headers=headers)).json()["result"]
            assert not result["isError"], result
            return dict(result["structuredContent"])

        for n in range(3):
            started_at = (T0 + timedelta(minutes=n)).isoformat()
            await call(
                shared_fleet[n % 2], "tasks_record", task_id="paged", status="success", started_at=started_at
            )
        first = await call(shared_fleet[0], "tasks_list", task_id="paged", limit=2)
        rest = await call(
            shared_fleet[1], "tasks_list", task_id="paged", limit=2, cursor=first["next_cursor"]
        )
    pages = [e["started_at"] for e in first["executions"] + rest["executions"]]
    assert len(pages) == 3 and pages == sorted(pages, reverse=True) and rest["next_cursor"] is None
