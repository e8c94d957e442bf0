"""Lint and format are part of the suite, so `make test` (and CI) holds the tree to them: ruff's
rules from pyproject.toml, including the ban on MCP and HTTP imports inside store/ and config/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("server", "store", "config", "tests", "bench", "recorder", "examples")
PATHS = [folder for folder in FOLDERS if (ROOT / folder).exists()]


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff_finds_nothing(command: list[str]) -> None:
    ruff = [sys.executable, "-m", "ruff", *command, *PATHS]
    done = subprocess.run(ruff, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
