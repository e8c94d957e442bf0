"""A terminal read that names a SQLite file which does not exist is an error that says so, instead
of creating an empty database and answering "nothing matches" (a mistyped --db looked like a quiet
history)."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import SETTINGS_SPEC
from server.cli import main


@pytest.mark.parametrize("command", [["list"], ["last-failed"], ["trace", "t"], ["get", "s"]])
def test_a_read_of_a_missing_database_fails_and_creates_nothing(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [spec.env_var for spec in SETTINGS_SPEC] + ["TASK_HISTORY_CONFIG"]:
        monkeypatch.delenv(name, raising=False)
    missing = tmp_path / "typo" / "history.db"
    assert main([*command, "--db", str(missing)]) == 1
    assert f"no database at {missing}" in capsys.readouterr().err
    assert not missing.parent.exists()
