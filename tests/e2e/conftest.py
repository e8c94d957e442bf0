"""Real servers for end-to-end tests: uvicorn on a free loopback port in a background thread (one per
test, on the test's own database), `task-history serve` as a real subprocess, and helpers to spawn the
real CLI.

The database is `database_url` from tests/conftest.py, so each test runs on a SQLite file and on a fresh
PostgreSQL schema; a test that asks for `db_path` (the SQLite file itself) runs on SQLite only.

In a thread, the port is taken by binding a socket to port 0 and handing that very socket to uvicorn,
so no other process can grab the port between choosing and serving. A subprocess gets a port that was
free a moment ago (the OS hands out ports in turn, so a collision is unlikely, and would show as the
process exiting with uvicorn's "address already in use"). Readiness is `/healthz` answering 200, polled
under a deadline; a server process that exits meanwhile fails the wait at once, with its log."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn

from config import Settings, load_settings
from server.http import build_http_app

REPO_ROOT = Path(__file__).resolve().parents[2]
# The scenario helpers live beside the in-memory tool tests; both suites drive the same scenarios.
sys.path.insert(0, str(REPO_ROOT / "tests" / "server"))

STARTUP_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class RunningServer:
    settings: Settings
    base_url: str

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"


def make_settings(database_url: str | Path, **overrides: Any) -> Settings:
    """Settings from the shipped defaults and `overrides` only: the developer's environment is ignored."""
    return load_settings({"database_url": str(database_url), **overrides}, environ={})


def wait_until_healthy(
    base_url: str, timeout: float = STARTUP_TIMEOUT_S, process: ServerProcess | None = None
) -> None:
    """Poll GET /healthz until it answers 200 or the deadline passes (or `process` exits)."""
    deadline = time.monotonic() + timeout
    with httpx2.Client(timeout=2.0) as http:
        while True:
            try:
                if http.get(f"{base_url}/healthz").status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            if process is not None and process.popen.poll() is not None:
                raise RuntimeError(f"the server exited with {process.popen.returncode}: {process.log()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{base_url}/healthz did not answer 200 within {timeout} s")
            time.sleep(0.02)  # poll interval, not synchronisation: the loop waits on the condition


@contextmanager
def serve_in_thread(settings: Settings) -> Iterator[RunningServer]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings = settings.model_copy(update={"host": "127.0.0.1", "port": port})
    config = uvicorn.Config(
        build_http_app(settings), log_level="warning", lifespan="on", timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
    thread.start()
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}")
        yield RunningServer(settings, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@pytest.fixture
def http_server(database_url: str) -> Iterator[RunningServer]:
    with serve_in_thread(make_settings(database_url)) as running:
        yield running


def cli_env() -> dict[str, str]:
    """Environment for a spawned `task-history`: this checkout importable, no TASK_HISTORY_* leaking in."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TASK_HISTORY_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "server.cli", *args]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ServerProcess:
    """A `task-history serve` subprocess; its stdout and stderr go to `log_path` (a pipe nobody reads
    could fill up and stall the server)."""

    popen: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def launch_server(database_url: str, log_path: Path, *flags: str) -> ServerProcess:
    """Start `task-history serve` on a free loopback port and `database_url`, and return at once
    (several can then start at the same moment); `wait_until_healthy` says when it serves."""
    port = free_port()
    command = cli_command(
        "serve", "--port", str(port), "--database-url", database_url, "--log-level", "warning", *flags
    )
    with open(log_path, "wb") as log:
        popen = subprocess.Popen(command, env=cli_env(), stdout=log, stderr=subprocess.STDOUT)
    return ServerProcess(popen, f"http://127.0.0.1:{port}", log_path)


def stop_server(process: ServerProcess) -> None:
    """SIGTERM (uvicorn's graceful shutdown), then wait; kill if it does not end."""
    process.popen.terminate()
    try:
        process.popen.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.popen.kill()
        process.popen.wait(timeout=20)


@contextmanager
def serve_process(database_url: str, log_path: Path, *flags: str) -> Iterator[ServerProcess]:
    """One `task-history serve`, yielded once /healthz answers, stopped afterwards."""
    process = launch_server(database_url, log_path, *flags)
    try:
        wait_until_healthy(process.base_url, process=process)
        yield process
    finally:
        stop_server(process)
