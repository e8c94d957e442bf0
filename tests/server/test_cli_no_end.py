"""The terminal table shows how long ago a run with no end recorded started, never a bare "-" that
reads like a finished run with no timing (and never a claim that the process is alive)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from config import SETTINGS_SPEC, load_settings
from server.app import open_store
from server.cli import main
from store.models import StartRequest


async def _start_long_ago(db: str) -> None:
    async with await open_store(load_settings({"database_url": db}, environ={})) as store:
        started_at = datetime.now(UTC) - timedelta(days=12)
        await store.start(StartRequest(task_id="killed-agent", started_at=started_at))


def test_a_run_with_no_end_shows_its_age_in_the_list_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [spec.env_var for spec in SETTINGS_SPEC] + ["TASK_HISTORY_CONFIG"]:
        monkeypatch.delenv(name, raising=False)
    db = str(tmp_path / "history.db")
    asyncio.run(_start_long_ago(db))
    assert main(["list", "--db", db]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "killed-agent" in line)
    assert "running" in row and "no end, 12 days" in row
