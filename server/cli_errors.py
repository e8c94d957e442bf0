"""Errors for a person at a terminal. The tools' sentences are written for an MCP client: they name
arguments, tools and `next_cursor`. The CLI says the same things in its own words: the flag to
change, the command to run again, the cursor it printed."""

from __future__ import annotations

import argparse

from pydantic import ValidationError

from server.errors import default_hint, validation_lines
from store.errors import InvalidInput, StoreError

PROG = "task-history"

_POSITIONAL = {"trace_id": "TRACE_ID", "span_id": "SPAN_ID"}

# What the tools' hints call things, and what a terminal user types or sees instead; phrases
# before the words inside them.
_TERMINAL_WORDS = (
    ("Call tasks_", "Run tasks_"),
    ("next_cursor from the previous page", "the cursor printed under the previous page"),
    ("next_cursor", "the printed cursor"),
    ("tasks_last_failed", f"{PROG} last-failed"),
    ("tasks_by_trace", f"{PROG} trace"),
    ("tasks_list", f"{PROG} list"),
    ("tasks_get", f"{PROG} get"),
)


def store_error_text(command: str, error: StoreError, args: argparse.Namespace) -> str:
    """`error` as the CLI says it: the field as its flag, the hint in the CLI's words."""
    message = error.message
    field = getattr(error, "field", None)
    if isinstance(field, str) and message.startswith(f"{field}:"):
        message = flag_of(field, args) + message[len(field) :]
    if error.hint:
        hint = error.hint
    elif isinstance(error, InvalidInput):
        hint = f"Correct {flag_of(error.field, args)} and run {PROG} {command} again."
    else:
        hint = default_hint(command, error)
    return in_terminal_words(f"{command} failed: {message}. {hint}")


def validation_text(command: str, error: ValidationError, args: argparse.Namespace) -> str:
    """One line per bad flag, as the tools give one per bad argument."""
    lines = validation_lines(error, lambda where: flag_of(where, args))
    noun = "flag is" if len(lines) == 1 else "flags are"
    head = f"{command}: {len(lines)} {noun} invalid."
    tail = f"Fix the above and run {PROG} {command} again ({PROG} {command} --help describes each flag)."
    return in_terminal_words("\n".join([head, *lines, tail]))


def flag_of(where: str, args: argparse.Namespace) -> str:
    """`--task-id` for task_id when the command has that flag, TRACE_ID for its positional argument;
    anything else (a field inside an imported document, say) as it is."""
    top, dot, rest = where.partition(".")
    if top not in vars(args):
        return where
    named = _POSITIONAL.get(top) or "--" + top.replace("_", "-")
    return f"{named}{dot}{rest}"


def in_terminal_words(text: str) -> str:
    for tool_word, terminal_word in _TERMINAL_WORDS:
        text = text.replace(tool_word, terminal_word)
    return text
