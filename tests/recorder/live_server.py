"""A real task-history server for the recorder tests: uvicorn on a loopback port in a thread, which
can be stopped and started again on the same port (and database) to play an outage.

The first start binds port 0 and keeps the socket it got, so no other process can take the port
between choosing and serving; a restart binds that same port again (SO_REUSEADDR)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx2
import uvicorn

from config import load_settings
from server.http import build_http_app

STARTUP_TIMEOUT_S = 20.0


class LiveServer:
    def __init__(self, db: Path, **settings: object) -> None:
        self.settings = load_settings({"database_url": str(db), **settings}, environ={})
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self) -> LiveServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        settings = self.settings.model_copy(update={"host": "127.0.0.1", "port": self.port})
        config = uvicorn.Config(
            build_http_app(settings), log_level="warning", lifespan="on", timeout_graceful_shutdown=5
        )
        self._server, self._sock = uvicorn.Server(config), sock
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        self._wait_healthy()
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None and self._sock is not None:
            self._server.should_exit = True
            self._thread.join(timeout=15)
            self._sock.close()
        self._server = self._thread = self._sock = None

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        with httpx2.Client(timeout=2.0) as http:
            while True:
                try:
                    if http.get(f"http://127.0.0.1:{self.port}/healthz").status_code == 200:
                        return
                except httpx2.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the server on port {self.port} did not become healthy")
                time.sleep(0.02)  # poll interval while waiting on the condition
