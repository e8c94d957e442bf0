"""Turning every anticipated failure into a tool error a model can act on, in one place.

The SDK reports a tool failure in one of two ways, and only one is useful:

    ToolError                  text reaches the client (is_error=True); we raise these
    └── UnexpectedToolError    a crash: the client sees only "Error executing tool X"

The store raises `StoreError` (InvalidInput, NotFound, Conflict, StoreUnavailable) and pydantic raises
`ValidationError` for malformed arguments. The SDK wraps both, keeping the original as `__cause__`;
`to_tool_error` unwraps them and writes one sentence saying what was wrong and how to fix it. Anything
else stays a crash on purpose: its text is not for the caller.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import ValidationError

from server.wire_text import BROKEN
from store.errors import Conflict, InvalidInput, NotFound, StoreError, StoreUnavailable

_SHOWN_CHARS = 60

# What to do about each kind of pydantic complaint; the complaint itself already says what is wrong.
_TIMESTAMP_FIX = "send an ISO 8601 timestamp with a UTC offset, e.g. 2025-11-04T18:29:12Z"
_VALIDATION_FIXES = {
    "missing": "add it",
    "extra_forbidden": "remove it; the input schema lists the accepted fields",
    "timezone_aware": _TIMESTAMP_FIX + " (a time without a zone would be a guess)",
    "datetime_parsing": _TIMESTAMP_FIX,
    "datetime_from_date_parsing": _TIMESTAMP_FIX,
    "datetime_type": _TIMESTAMP_FIX,
    "string_too_long": "send a shorter value",
    "string_too_short": "send a non-empty value",
    "string_pattern_mismatch": "remove control characters",
    "less_than_equal": "lower it",
    "greater_than_equal": "raise it",
    "less_than": "lower it",
    "greater_than": "raise it",
}


def to_tool_error(tool: str, error: ToolError) -> ToolError:
    """The error the client should read for `error`, raised while running `tool`."""
    cause = error.__cause__
    if isinstance(cause, StoreError):
        return ToolError(describe_store_error(tool, cause))
    if isinstance(cause, ValidationError):
        return ToolError(describe_validation(tool, cause))
    return error


def describe_store_error(tool: str, error: StoreError) -> str:
    """`error`'s own sentence, then what to do about it."""
    return f"{tool} failed: {error.message}. {error.hint or default_hint(tool, error)}"


def default_hint(tool: str, error: StoreError) -> str:
    if isinstance(error, NotFound):
        return "Check the id; tasks_list and tasks_last_failed show recent span_ids and trace_ids."
    if isinstance(error, InvalidInput):
        return f"Correct {error.field} and call {tool} again."
    if isinstance(error, Conflict):
        return "The stored record was kept unchanged; read it with tasks_get before writing again."
    if isinstance(error, StoreUnavailable):
        return "The database is busy or unreachable; retry in a moment."
    return "Nothing was written; correct the call and try again."


WRITE_TOOL_NAMES = frozenset({"tasks_start", "tasks_finish", "tasks_log_event", "tasks_record"})
"""The tools that write (server.tools.WRITE_TOOLS; a test keeps the two in step): only their
errors need to say that nothing was written."""


def _nothing_written(tool: str) -> str:
    return "; nothing was written" if tool in WRITE_TOOL_NAMES else ""


def describe_validation(tool: str, error: ValidationError) -> str:
    """One line per bad argument: where, what pydantic said, what we got, how to fix it."""
    lines = validation_lines(error)
    noun = "argument is" if len(lines) == 1 else "arguments are"
    head = f"{tool}: {len(lines)} {noun} invalid{_nothing_written(tool)}."
    tail = f"Fix the argument(s) above and call {tool} again; its input schema gives every type and bound."
    return "\n".join([head, *lines, tail])


def validation_lines(error: ValidationError, name: Callable[[str], str] = str) -> list[str]:
    """A line per problem in `error`, each place named by `name` (the CLI names its flags)."""
    return [_describe_problem(problem, name) for problem in error.errors(include_url=False)]


def _describe_problem(problem: Mapping[str, Any], name: Callable[[str], str]) -> str:
    where = name(".".join(str(part) for part in problem["loc"])) or "arguments"
    text = f"- {where}: {problem['msg']}"
    if problem["type"] != "missing":
        text += f" (got {shorten(problem.get('input'))})"
    fix = _VALIDATION_FIXES.get(problem["type"])
    return f"{text}; {fix}." if fix else f"{text}."


def shorten(value: object) -> str:
    """A short, printable, JSON-safe rendering of what a caller sent (it may be megabytes)."""
    if isinstance(value, str) and len(value) > _SHOWN_CHARS:
        return f"{value[:_SHOWN_CHARS]!r}... ({len(value)} characters)"
    if isinstance(value, datetime):  # parsed already (a validator after the type's own)
        return value.isoformat()
    text = repr(value)  # repr escapes lone surrogates and control characters
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."


def unknown_tool(tool: str, offered: Iterable[str], *, withheld: bool) -> ToolError:
    """Name what is on offer, and say so when `tool` exists but read-only mode withholds it."""
    why = " (this server is read-only: it serves only the read tools)" if withheld else ""
    return ToolError(f"Unknown tool {tool!r}{why}. This server offers: {', '.join(offered)}.")


def check_arguments(tool: str, arguments: Mapping[str, Any], accepted: Iterable[str]) -> None:
    """Refuse what the SDK would silently drop (unknown names) or the database cannot store (bad text)."""
    known = set(accepted)
    unknown = sorted(name for name in arguments if name not in known)
    if unknown:
        raise ToolError(
            f"{tool}: unknown argument(s) {', '.join(map(repr, unknown))}{_nothing_written(tool)}. "
            f"Accepted arguments: {', '.join(sorted(known))}."
        )
    where = None if _all_text_valid(arguments) else find_invalid_text(arguments)
    if where is not None:
        raise ToolError(
            f"{tool}: {_shown(where)} is not valid Unicode text (it contains bytes that are not UTF-8, "
            f"or a lone surrogate such as \\ud800){_nothing_written(tool)}. Send the text as valid UTF-8, "
            "replacing or dropping the broken character."
        )


def _all_text_valid(arguments: Mapping[str, Any]) -> bool:
    """One C-speed pass: every string (keys too) lands unescaped in this dump, so it encodes and lacks
    the wire's mark exactly when every string is storable; only otherwise is the walk needed."""
    try:
        dumped = json.dumps(arguments, ensure_ascii=False, default=str)
        dumped.encode("utf-8")
    except (UnicodeEncodeError, TypeError, ValueError):
        return False
    return BROKEN not in dumped


def _shown(path: str) -> str:
    """`path` with the broken characters of a broken key shown as U+FFFD: the wire's mark is an
    internal noncharacter, and a lone surrogate cannot be sent back at all."""
    return "".join("\ufffd" if ch == BROKEN or "\ud800" <= ch <= "\udfff" else ch for ch in path)


def find_invalid_text(value: Any, path: str = "") -> str | None:
    """The path of the first string (or key) that cannot be encoded as UTF-8, if any."""
    if isinstance(value, str):
        return None if _encodable(value) else (path or "argument")
    if isinstance(value, Mapping):
        return _first_invalid(
            (f"{path}.{key}" if path else str(key), key, item) for key, item in value.items()
        )
    if isinstance(value, list | tuple):
        return _first_invalid((f"{path}[{index}]", "", item) for index, item in enumerate(value))
    return None


def _first_invalid(entries: Iterable[tuple[str, object, Any]]) -> str | None:
    for where, key, item in entries:
        if isinstance(key, str) and not _encodable(key):
            return f"the key of {where}"
        found = find_invalid_text(item, where)
        if found is not None:
            return found
    return None


def _encodable(text: str) -> bool:
    """False for text the database cannot hold: lone surrogates, and the wire's mark for broken bytes."""
    if BROKEN in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
