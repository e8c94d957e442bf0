"""The README is a contract: its settings table and quick start must match the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from config import SETTINGS_SPEC, SettingSpec

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")


def settings_rows() -> dict[str, list[str]]:
    rows = re.findall(r"^\| `(\w+)` \| `(TASK_HISTORY_\w+)` \| `(--[\w-]+)` \|", README, flags=re.M)
    return {name: [env, flag] for name, env, flag in rows}


@pytest.mark.parametrize("spec", SETTINGS_SPEC, ids=lambda spec: spec.name)
def test_every_setting_has_its_readme_row_with_env_var_and_flag(spec: SettingSpec) -> None:
    assert settings_rows().get(spec.name) == [spec.env_var, spec.cli_flag]


def test_the_readme_lists_no_setting_the_code_does_not_have() -> None:
    assert set(settings_rows()) == {spec.name for spec in SETTINGS_SPEC}


def test_the_quick_start_is_exactly_make_serve_and_make_test() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick_start.strip().splitlines()]
    assert commands == ["make serve", "make test"]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci
