"""Fixtures for the tool-logic tests: the real server object over a real Store on a SQLite file in
tmp_path, reached through the SDK's in-memory client (no network, same code path as a transport)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from config import Settings, load_settings
from server.app import build_server


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings on this test's database file; the developer's environment is ignored."""

    def make(**overrides: Any) -> Settings:
        return load_settings({"database_url": str(tmp_path / "history.db"), **overrides}, environ={})

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def connect(settings: Settings) -> Callable[..., Client]:
    """`async with connect() as client:` - a context manager, not a yield fixture, because the client's
    task group must be entered and exited by the same task (pytest-asyncio tears fixtures down in another)."""

    def make(custom: Settings | None = None) -> Client:
        return Client(build_server(custom or settings))

    return make
