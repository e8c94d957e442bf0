"""Fixtures shared by every test folder: a real Store on a real database.

`store` runs each test twice, on a SQLite file and on PostgreSQL. The PostgreSQL case gets a
fresh schema of its own (dropped afterwards) on the server named by TASK_HISTORY_TEST_POSTGRES_URL,
and skips, saying how to enable it, when that is unset or unreachable. A test that also asks
for `db_path` works on the SQLite file itself, so it runs on SQLite only."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest

from store import Store

POSTGRES_ENV = "TASK_HISTORY_TEST_POSTGRES_URL"
ENABLE_POSTGRES = f"set {POSTGRES_ENV}=postgresql://127.0.0.1:5432/test to run the PostgreSQL cases"
SQLITE_FILE = "history.db"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / SQLITE_FILE


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database_url" not in metafunc.fixturenames:
        return
    backends: list[object] = ["sqlite"]
    if "db_path" not in metafunc.fixturenames:
        backends.append(pytest.param("postgres", marks=pytest.mark.postgres))
    metafunc.parametrize("database_url", backends, indirect=True)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL for the parametrized engine: the SQLite file at db_path, or a fresh schema."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return str(tmp_path / SQLITE_FILE)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(database_url)
    try:
        yield opened
    finally:
        await opened.close()


# ---- PostgreSQL ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The test server's URL; skips when none is configured or it does not answer."""
    url = os.environ.get(POSTGRES_ENV, "").strip()
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set; {ENABLE_POSTGRES}")
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at {_redacted(url)} is unreachable ({str(exc).strip()}); {ENABLE_POSTGRES}")
    return url


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A URL whose search_path is a new, empty schema, dropped with everything in it afterwards."""
    with fresh_schema(postgres_server) as url:
        yield url


@pytest.fixture(scope="module")
def module_postgres_url(postgres_server: str) -> Iterator[str]:
    """Like postgres_url, shared by the tests of one module (for data that is slow to build)."""
    with fresh_schema(postgres_server) as url:
        yield url


@contextmanager
def fresh_schema(server_url: str) -> Iterator[str]:
    schema = f"th_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield with_search_path(server_url, schema)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def with_search_path(url: str, schema: str) -> str:
    """`url` with `options=-csearch_path=<schema>` added to its query string."""
    parts = urlsplit(url)
    option = "options=" + quote(f"-csearch_path={schema}", safe="")
    query = f"{parts.query}&{option}" if parts.query else option
    return urlunsplit(parts._replace(query=query))


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"
