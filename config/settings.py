"""Typed runtime settings for task-history, and where their values come from.

The pydantic model `Settings` is the single source of truth: its fields carry the
type, bounds, default and human description of every setting. Everything else is
derived from it or tested against it, so nothing can drift apart:

* `SETTINGS_SPEC` lists each setting with its environment variable and CLI flag
  (it drives CLI help, the README table and the docs-agree tests);
* ``config/default.toml`` holds the shipped defaults, one commented key per field.

`load_settings` layers the sources, lowest precedence first::

    config/default.toml  <  config file (argument or $TASK_HISTORY_CONFIG)
                         <  environment (TASK_HISTORY_<NAME>)  <  overrides (CLI flags)

Any bad value raises `SettingsError` naming the key and the source it came from,
because "invalid config" without saying where is useless to an operator.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.fields import FieldInfo

ENV_PREFIX = "TASK_HISTORY_"
CONFIG_FILE_ENV = "TASK_HISTORY_CONFIG"
DEFAULTS_PATH = Path(__file__).with_name("default.toml")

_TRUE_WORDS = frozenset({"true", "1", "yes"})
_FALSE_WORDS = frozenset({"false", "0", "no"})
_SECRET_SETTINGS = frozenset({"token"})

# A layer maps setting name -> (raw value, human label of where it came from).
_Layer = dict[str, tuple[object, str]]


class SettingsError(ValueError):
    """A setting is unknown or has a bad value; the message says which and from where."""


class _RuleError(ValueError):
    """A cross-field rule failed; `key` is the setting the operator should look at."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def is_loopback_host(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1 (bracketed or IPv4-mapped forms too)."""
    name = host.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name in ("localhost", "localhost."):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


class Settings(BaseModel):
    """Every runtime setting of the server; immutable once loaded."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    database_url: str = Field(
        "./data/task-history.db",
        min_length=1,
        description="SQLite file path (or sqlite:///path); a postgresql:// URL selects PostgreSQL",
    )
    auto_migrate: bool = Field(
        True,
        description=(
            "apply pending schema migrations when a command opens the database; off, every command but "
            "`task-history migrate` and `copy` refuses a database that lacks some"
        ),
    )
    host: str = Field("127.0.0.1", min_length=1, description="address the HTTP server binds")
    port: int = Field(8001, ge=1, le=65535, description="HTTP port")
    token: str = Field(
        "",
        description=(
            "bearer token; when set, every /mcp request needs 'Authorization: Bearer <token>'; "
            "required to bind a non-loopback host"
        ),
    )
    read_only: bool = Field(False, description="serve only the read tools")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="extra Host header values accepted (loopback names are always accepted)",
    )
    allowed_origins: list[str] = Field(default_factory=list, description="extra Origin values accepted")
    scrub_pii: bool = Field(
        True, description="replace emails, IPs, UUIDs and secrets in free text at write time"
    )
    max_request_bytes: int = Field(
        16_777_216, ge=1024, description="largest HTTP request body accepted (a larger one gets 413)"
    )
    max_text_chars: int = Field(
        65_536,
        ge=256,
        description="longest free-text field (result, error message, stack) accepted",
    )
    max_data_bytes: int = Field(
        65_536,
        ge=256,
        description="largest JSON object (event data, attributes, retrieval filters) accepted, serialized",
    )
    max_list_items: int = Field(
        1000,
        ge=1,
        description="longest list (parents, causes, files_written, tool_calls ...) accepted",
    )
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL", description="FULL survives power loss; NORMAL survives process crashes only"
    )
    busy_timeout_ms: int = Field(
        5000, ge=0, description="how long a write waits for another process holding the database"
    )
    write_batch_max: int = Field(
        256,
        ge=1,
        le=10_000,
        description="most queued writes committed in one transaction (group commit)",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="lowest severity of log records the server emits"
    )
    retain_success_days: int = Field(
        90,
        ge=0,
        description="days `task-history prune` keeps successful and cancelled executions (0: forever)",
    )
    retain_failed_days: int = Field(
        365, ge=0, description="days `task-history prune` keeps failed and partial executions (0: forever)"
    )
    retain_events_days: int = Field(
        365,
        ge=0,
        description="days `task-history prune` keeps lifecycle events (0: forever); a running "
        "execution's stay",
    )

    @field_validator("sqlite_synchronous", "log_level", mode="before")
    @classmethod
    def _upper_case_choice(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("token")
    @classmethod
    def _token_is_header_safe(cls, value: str) -> str:
        if any(not "!" <= char <= "~" for char in value):
            raise ValueError("must be printable ASCII without spaces (it travels in an HTTP header)")
        return value

    # "A non-loopback bind needs a token" is checked where binding happens (`task-history serve`),
    # not here: stdio and the terminal commands never bind, and must work whatever the host says.


@dataclass(frozen=True, slots=True)
class SettingSpec:
    """One setting as the outside world sees it (CLI flag, env var, docs)."""

    name: str
    type_name: str  # "str", "int", "bool", "list[str]" or "choice"
    default: Any
    description: str
    env_var: str
    cli_flag: str
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return "choice"
    if origin is list:
        return "list[str]"
    return annotation.__name__


def _bound(field: FieldInfo, attr: str) -> int | None:
    values = [getattr(item, attr) for item in field.metadata if hasattr(item, attr)]
    return values[0] if values else None


def _spec_for(name: str, field: FieldInfo) -> SettingSpec:
    if not field.description:
        raise TypeError(f"Settings.{name} needs a Field(description=...)")
    annotation = field.annotation
    return SettingSpec(
        name=name,
        type_name=_type_name(annotation),
        default=field.get_default(call_default_factory=True),
        description=field.description,
        env_var=ENV_PREFIX + name.upper(),
        cli_flag="--" + name.replace("_", "-"),
        choices=annotation.__args__ if get_origin(annotation) is Literal else (),
        minimum=_bound(field, "ge"),
        maximum=_bound(field, "le"),
    )


SETTINGS_SPEC: tuple[SettingSpec, ...] = tuple(
    _spec_for(name, field) for name, field in Settings.model_fields.items()
)
_SPEC_BY_NAME = {spec.name: spec for spec in SETTINGS_SPEC}


def _context(spec: SettingSpec) -> str:
    return f"({spec.name}: {spec.description})"


def _shown(name: str, value: object) -> str:
    return "'<redacted>'" if name in _SECRET_SETTINGS else repr(value)


def _unknown_setting(where: str, name: str) -> SettingsError:
    hint = difflib.get_close_matches(name, _SPEC_BY_NAME, n=1)
    maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
    known = ", ".join(_SPEC_BY_NAME)
    return SettingsError(f"{where}: unknown setting {name!r}{maybe}; known settings: {known}")


def _parse_text(spec: SettingSpec, text: str, where: str) -> object:
    """Turn an environment/CLI string into the setting's Python type."""
    if spec.type_name == "bool":
        word = text.strip().lower()
        if word in _TRUE_WORDS | _FALSE_WORDS:
            return word in _TRUE_WORDS
        problem = "is not a valid boolean (use true/false, 1/0 or yes/no)"
    elif spec.type_name == "int":
        try:
            return int(text.strip())
        except ValueError:
            problem = "is not a valid integer"
    elif spec.type_name == "list[str]":
        return [item.strip() for item in text.split(",") if item.strip()]
    else:
        return text
    raise SettingsError(f"{where}: {_shown(spec.name, text)} {problem} {_context(spec)}")


def _read_toml(path: Path, label: str) -> _Layer:
    where = f"{label} {path}"
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"{where}: cannot read: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{where}: not valid TOML: {exc}") from exc
    for name in document:
        if name not in _SPEC_BY_NAME:
            raise _unknown_setting(where, name)
    return {name: (value, f"{where}, setting {name!r}") for name, value in document.items()}


def _environment_layer(environ: Mapping[str, str]) -> _Layer:
    layer: _Layer = {}
    for spec in SETTINGS_SPEC:
        if spec.env_var in environ:
            layer[spec.name] = (_parse_text(spec, environ[spec.env_var], spec.env_var), spec.env_var)
    return layer


def _override_layer(overrides: Mapping[str, object]) -> _Layer:
    layer: _Layer = {}
    for name, value in overrides.items():
        spec = _SPEC_BY_NAME.get(name)
        if spec is None:
            raise _unknown_setting("overrides", name)
        if value is None:
            continue
        if isinstance(value, str) and spec.type_name not in ("str", "choice"):
            value = _parse_text(spec, value, spec.cli_flag)
        elif isinstance(value, tuple):
            value = list(value)
        layer[name] = (value, spec.cli_flag)
    return layer


def _describe(error: dict[str, Any], sources: Mapping[str, str]) -> str:
    """One line for one pydantic error: source, value, problem, setting."""
    cause = (error.get("ctx") or {}).get("error")
    loc = error["loc"]
    name = cause.key if isinstance(cause, _RuleError) else str(loc[0])
    where = sources.get(name, f"setting {name!r}")
    if isinstance(cause, _RuleError):
        return f"{where}: {cause}"
    detail = str(cause) if isinstance(cause, ValueError) else error["msg"][:1].lower() + error["msg"][1:]
    spec = _SPEC_BY_NAME[name]
    return f"{where}: {_shown(name, error['input'])} is invalid: {detail} {_context(spec)}"


def _validate(layers: list[_Layer]) -> Settings:
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    for layer in layers:
        for name, (value, where) in layer.items():
            values[name], sources[name] = value, where
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        lines = [_describe(error, sources) for error in exc.errors(include_url=False)]
        raise SettingsError("\n".join(lines)) from None


def load_settings(
    overrides: Mapping[str, object] | None = None,
    *,
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build `Settings` from default.toml < config file < environment < overrides.

    `config_file` defaults to ``$TASK_HISTORY_CONFIG``; `environ` defaults to
    ``os.environ``; override values of None are ignored (unset CLI flags), and
    string overrides are parsed like environment values.
    """
    environ = os.environ if environ is None else environ
    layers = [_read_toml(DEFAULTS_PATH, "defaults file")]
    chosen = config_file if config_file is not None else environ.get(CONFIG_FILE_ENV)
    if chosen:
        layers.append(_read_toml(Path(chosen), "config file"))
    layers.append(_environment_layer(environ))
    layers.append(_override_layer(overrides or {}))
    return _validate(layers)
