"""Settings: defaults, layering, parsing and error messages.

These tests pin the contract operators rely on: where defaults come from, which
source wins, how environment strings are parsed, and that every bad value is
reported with the key and the place it came from.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

import config
from config import SETTINGS_SPEC, Settings, SettingsError, is_loopback_host, load_settings
from config import settings as settings_module

DEFAULT_TOML = Path(config.__file__).with_name("default.toml")


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_come_from_default_toml_and_match_the_model() -> None:
    assert load_settings(environ={}) == Settings()


def test_defaults_are_read_from_the_default_toml_file(tmp_path, monkeypatch) -> None:
    text = DEFAULT_TOML.read_text(encoding="utf-8").replace("port = 8001", "port = 9100")
    monkeypatch.setattr(settings_module, "DEFAULTS_PATH", write_toml(tmp_path, text))
    assert load_settings(environ={}).port == 9100


def test_default_toml_lists_exactly_the_model_fields_with_their_defaults() -> None:
    document = tomllib.loads(DEFAULT_TOML.read_text(encoding="utf-8"))
    assert list(document) == list(Settings.model_fields)
    assert document == Settings().model_dump()


def test_every_default_toml_key_has_its_description_as_the_comment_above_it() -> None:
    lines = DEFAULT_TOML.read_text(encoding="utf-8").splitlines()
    for spec in SETTINGS_SPEC:
        index = next(i for i, line in enumerate(lines) if line.startswith(f"{spec.name} = "))
        assert lines[index - 1].startswith(f"# {spec.description}"), spec.name


def test_config_file_overrides_the_defaults(tmp_path) -> None:
    path = write_toml(tmp_path, 'port = 9001\nallowed_hosts = ["tasks.internal"]\n')
    loaded = load_settings(config_file=path, environ={})
    assert (loaded.port, loaded.allowed_hosts, loaded.host) == (9001, ["tasks.internal"], "127.0.0.1")


def test_environment_overrides_the_file_and_flags_override_the_environment(tmp_path) -> None:
    path = write_toml(tmp_path, "port = 9001\nread_only = true\nbusy_timeout_ms = 10\n")
    environ = {"TASK_HISTORY_PORT": "9002", "TASK_HISTORY_READ_ONLY": "no"}
    loaded = load_settings({"port": 9003}, config_file=path, environ=environ)
    assert (loaded.port, loaded.read_only, loaded.busy_timeout_ms) == (9003, False, 10)


def test_config_file_is_taken_from_task_history_config_when_not_passed(tmp_path) -> None:
    path = write_toml(tmp_path, "port = 9004\n")
    assert load_settings(environ={"TASK_HISTORY_CONFIG": str(path)}).port == 9004


def test_config_file_argument_wins_over_task_history_config(tmp_path) -> None:
    path = write_toml(tmp_path, "port = 9005\n")
    environ = {"TASK_HISTORY_CONFIG": str(tmp_path / "absent.toml")}
    assert load_settings(config_file=path, environ=environ).port == 9005


def test_overrides_that_are_none_are_ignored() -> None:
    loaded = load_settings({"port": None, "token": None}, environ={"TASK_HISTORY_PORT": "9006"})
    assert (loaded.port, loaded.token) == (9006, "")


def test_string_overrides_are_parsed_like_environment_values() -> None:
    loaded = load_settings({"port": "9007", "scrub_pii": "no", "allowed_origins": "a, b"}, environ={})
    assert (loaded.port, loaded.scrub_pii, loaded.allowed_origins) == (9007, False, ["a", "b"])


def test_unrelated_task_history_environment_variables_are_ignored() -> None:
    environ = {"TASK_HISTORY_TEST_POSTGRES_URL": "postgresql://x/y", "TASK_HISTORY_PROT": "1"}
    assert load_settings(environ=environ) == Settings()


def test_bad_environment_value_names_the_variable_and_the_key() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ={"TASK_HISTORY_PORT": "abc"})
    assert str(caught.value) == "TASK_HISTORY_PORT: 'abc' is not a valid integer (port: HTTP port)"


def test_out_of_range_environment_value_names_the_variable_and_the_bound() -> None:
    with pytest.raises(SettingsError, match=r"^TASK_HISTORY_PORT: 70000 is invalid: .*65535 \(port: "):
        load_settings(environ={"TASK_HISTORY_PORT": "70000"})


def test_bad_flag_value_names_the_flag() -> None:
    with pytest.raises(SettingsError, match=r"^--write-batch-max: 0 is invalid: .*\(write_batch_max: "):
        load_settings({"write_batch_max": 0}, environ={})


def test_unknown_toml_key_is_an_error_naming_the_key_the_file_and_a_suggestion(tmp_path) -> None:
    path = write_toml(tmp_path, "prot = 9000\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(config_file=path, environ={})
    message = str(caught.value)
    assert message.startswith(f"config file {path}: unknown setting 'prot' (did you mean 'port'?)")
    assert "known settings: database_url, auto_migrate, host, port," in message


def test_unknown_override_key_is_an_error() -> None:
    with pytest.raises(SettingsError, match=r"^overrides: unknown setting 'verbose'"):
        load_settings({"verbose": True}, environ={})


def test_wrongly_typed_toml_value_names_the_file_and_key_and_is_not_coerced(tmp_path) -> None:
    path = write_toml(tmp_path, 'port = "9000"\n')
    with pytest.raises(SettingsError) as caught:
        load_settings(config_file=path, environ={})
    assert str(caught.value).startswith(f"config file {path}, setting 'port': '9000' is invalid: ")


def test_missing_config_file_is_an_error_naming_it(tmp_path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(SettingsError, match=rf"^config file {re.escape(str(path))}: cannot read"):
        load_settings(config_file=path, environ={})


def test_malformed_config_file_is_an_error_naming_it(tmp_path) -> None:
    path = write_toml(tmp_path, "port = \n")
    with pytest.raises(SettingsError, match=rf"^config file {re.escape(str(path))}: not valid TOML"):
        load_settings(config_file=path, environ={})


def test_every_bad_value_is_reported_not_just_the_first() -> None:
    environ = {"TASK_HISTORY_PORT": "0", "TASK_HISTORY_MAX_LIST_ITEMS": "0"}
    with pytest.raises(SettingsError) as caught:
        load_settings(environ=environ)
    assert [line.split(":")[0] for line in str(caught.value).splitlines()] == [
        "TASK_HISTORY_PORT",
        "TASK_HISTORY_MAX_LIST_ITEMS",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        (" yes ", True),
        ("1", True),
        ("false", False),
        ("No", False),
        ("0", False),
    ],
)
def test_boolean_environment_values_accept_true_false_one_zero_yes_no(text, expected) -> None:
    assert load_settings(environ={"TASK_HISTORY_READ_ONLY": text}).read_only is expected


@pytest.mark.parametrize("text", ["", "on", "2", "truthy"])
def test_other_boolean_environment_values_are_rejected(text) -> None:
    with pytest.raises(SettingsError, match=r"^TASK_HISTORY_SCRUB_PII: .* is not a valid boolean"):
        load_settings(environ={"TASK_HISTORY_SCRUB_PII": text})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("a.example", ["a.example"]),
        ("a.example,b.example", ["a.example", "b.example"]),
        (" a.example , ,b.example, ", ["a.example", "b.example"]),
    ],
)
def test_list_environment_values_are_comma_separated_and_trimmed(text, expected) -> None:
    assert load_settings(environ={"TASK_HISTORY_ALLOWED_HOSTS": text}).allowed_hosts == expected


def test_choice_values_are_case_insensitive() -> None:
    environ = {"TASK_HISTORY_LOG_LEVEL": "debug", "TASK_HISTORY_SQLITE_SYNCHRONOUS": "normal"}
    loaded = load_settings(environ=environ)
    assert (loaded.log_level, loaded.sqlite_synchronous) == ("DEBUG", "NORMAL")


def test_unknown_choice_value_names_the_variable() -> None:
    with pytest.raises(SettingsError, match=r"^TASK_HISTORY_LOG_LEVEL: 'LOUD' is invalid: "):
        load_settings(environ={"TASK_HISTORY_LOG_LEVEL": "loud"})


def test_a_non_loopback_host_loads_so_commands_that_never_bind_still_work() -> None:
    # `serve` refuses to bind it without a token (tested in tests/e2e); stdio and list must not care.
    assert load_settings(environ={"TASK_HISTORY_HOST": "0.0.0.0"}).host == "0.0.0.0"


def test_a_bad_token_is_reported_without_revealing_it() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ={"TASK_HISTORY_TOKEN": "two words"})
    assert "two words" not in str(caught.value)
    assert str(caught.value).startswith("TASK_HISTORY_TOKEN: '<redacted>' is invalid: ")


def test_settings_are_immutable() -> None:
    with pytest.raises(ValidationError):
        Settings().port = 1  # type: ignore[misc]


def test_settings_spec_covers_every_field_in_order_with_env_and_flag_names() -> None:
    assert [spec.name for spec in SETTINGS_SPEC] == list(Settings.model_fields)
    for spec in SETTINGS_SPEC:
        assert spec.env_var == "TASK_HISTORY_" + spec.name.upper()
        assert spec.cli_flag == "--" + spec.name.replace("_", "-")
        assert spec.description == Settings.model_fields[spec.name].description
        assert spec.default == getattr(Settings(), spec.name)


def test_settings_spec_exposes_types_choices_and_bounds() -> None:
    by_name = {spec.name: spec for spec in SETTINGS_SPEC}
    assert (by_name["port"].type_name, by_name["port"].minimum, by_name["port"].maximum) == ("int", 1, 65535)
    assert by_name["read_only"].type_name == "bool"
    assert by_name["allowed_hosts"].type_name == "list[str]"
    assert by_name["database_url"].type_name == "str"
    assert (by_name["sqlite_synchronous"].type_name, by_name["sqlite_synchronous"].choices) == (
        "choice",
        ("FULL", "NORMAL"),
    )


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LocalHost", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.1", False),
        ("example.com", False),
        ("localhost.example.com", False),
        ("", False),
    ],
)
def test_is_loopback_host_accepts_only_loopback_addresses_and_localhost(host, expected) -> None:
    assert is_loopback_host(host) is expected


def test_auto_migrate_is_on_by_default_and_a_fleet_turns_it_off_by_environment_or_flag() -> None:
    assert load_settings(environ={}).auto_migrate is True
    assert load_settings(environ={"TASK_HISTORY_AUTO_MIGRATE": "false"}).auto_migrate is False
    assert (
        load_settings({"auto_migrate": False}, environ={"TASK_HISTORY_AUTO_MIGRATE": "yes"}).auto_migrate
        is False
    )
