"""Fixtures for the tool-logic tests: the real server object over a real Store, reached through the
SDK's in-memory client (no network, same code path as a transport).

The database is `database_url` from tests/conftest.py, so every test that connects runs twice: on a
SQLite file in tmp_path and on a fresh PostgreSQL schema (skipped, saying how to enable it, when no
PostgreSQL is configured)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from mcp import Client

from config import Settings, load_settings
from server.app import build_server


@pytest.fixture
def make_settings(database_url: str) -> Callable[..., Settings]:
    """Settings on this test's database; the developer's environment is ignored."""

    def make(**overrides: Any) -> Settings:
        return load_settings({"database_url": database_url, **overrides}, environ={})

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
