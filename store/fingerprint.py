"""Failure fingerprints: put the "same" failure from different runs into one group.

A person reading two failures says "that's the same bug" when the same exception type was
raised through the same call path -- regardless of which machine it ran on, which line the
code has moved to since, or which user id was in the message. `stack_hash` encodes exactly
that judgement: it hashes the exception type plus the ordered call path, after normalising
away everything volatile (line numbers, install prefixes, memory addresses, ids).

Pure functions, standard library only, no I/O: the store calls this at write time and the
tests feed it literal traceback text.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re

__all__ = ["frames", "normalize_message", "stack_hash"]

_ZONE = r"(?:Z|[+-]\d{2}:?\d{2})?"
_ADDRESS = re.compile(r"(?<![0-9a-z])0x[0-9a-f]+", re.IGNORECASE)

# Order matters: a rule must run before any later rule that would eat part of its match
# (a UUID contains long hex runs, a timestamp contains numbers, an address contains hex).
_MESSAGE_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE),
        "<uuid>",
    ),
    (re.compile(r"(?<![\w.%+-])[\w.%+-]+@(?:[a-z0-9-]+\.)+[a-z]{2,}\b", re.IGNORECASE), "<email>"),
    (re.compile(r"(?<!\d)\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?" + _ZONE + ")?"), "<ts>"),
    (_ADDRESS, "<addr>"),
    # A hex run needs a digit AND a letter: without the digit English words like "deadbeef"
    # or "facade" would match, without the letter plain numbers would (those become <n>).
    (
        re.compile(r"(?<![0-9a-z])(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}(?![0-9a-z])", re.IGNORECASE),
        "<hex>",
    ),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
)

# `|` and `+` prefixes appear when an ExceptionGroup traceback is rendered.
_PYTHON_FRAME = re.compile(
    r'^[ \t|+]*File "(?P<path>[^"\n]+)", line \d+(?:, in (?P<func>[^\n]*))?', re.MULTILINE
)
# The foreign patterns are fullmatched against stripped lines, and no two neighbouring
# quantifiers can match the same characters: stack text is untrusted and may be huge, so the
# matching has to stay linear instead of backtracking polynomially.
# Java/Kotlin `at pkg.Cls.method(File.java:42)`; the optional `in` part is the .NET form.
_JVM_FRAME = re.compile(r"at\s+(?P<func>[^\s(]+)\((?P<loc>[^)]*)\)(?:\s+in\s+(?P<src>\S.*))?")
# Node/V8 `at fn (file:12:5)` (V8 prints exactly one space before the paren) or `at file:12:5`.
_V8_FRAME = re.compile(r"at\s+(?:(?P<func>[^\s(][^(]*?) \((?P<loc>.*)\)|(?P<bare>\S+))")
# Firefox/Safari `fn@file:12:5`.
_GECKO_FRAME = re.compile(r"(?P<func>[^@\s]*)@(?P<loc>\S+:\d+(?::\d+)?)")

_JVM_MODULE = re.compile(r"^[\w.@-]+/+(?=[\w$<])")  # java.base@17.0.2/ or app// before the class
_GENERATED_ID = re.compile(r"(?<=\$\$Lambda\$)\d+|(?<=Accessor)\d+")  # runtime-assigned counters
_LINE_SUFFIX = re.compile(r"(?::line \d+|(?::\d+){1,2})$")
_URL_ORIGIN = re.compile(r"^[a-z][\w+.-]*://[^/]*", re.IGNORECASE)
_SEPARATORS = re.compile(r"[\\/]+")
# Below these directories the path is the same on every machine, so keep all of it.
_INSTALL_ROOT = re.compile(r"(?<![^/])(?:site-packages|dist-packages|node_modules|lib/python\d+\.\d+)/")
_ABSOLUTE_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[\\/][^\s\\/:()\[\]\"'<>]+){2,}")

Frame = tuple[str, str]


def normalize_message(message: str) -> str:
    """Replace ids, numbers, addresses, timestamps and e-mails with placeholders."""
    text = message
    for pattern, placeholder in _MESSAGE_RULES:
        text = pattern.sub(placeholder, text)
    return " ".join(text.split())


def stack_hash(error_type: str, stack: str | None, message: str | None = None) -> str:
    """16 hex chars identifying (exception type, call path); the message only counts without frames."""
    kind = _error_type(error_type)
    if stack:
        found = _frames_digest(kind, stack) if len(stack) <= _MEMO_CHARS else _digest_of_frames(kind, stack)
        if found is not None:
            return found
    return _digest(["message", kind, normalize_message(message or "")])


_MEMO_CHARS = 16384
"""Stacks up to this long are hashed once and remembered: the same failure recurs with the
same traceback, run after run. The memo holds at most a few MiB."""


def _digest_of_frames(kind: str, stack: str) -> str | None:
    path = frames(stack)
    return _digest(["frames", kind, path]) if path else None


_frames_digest = functools.lru_cache(maxsize=256)(_digest_of_frames)


def frames(stack: str) -> list[Frame]:
    """The normalised call path as (trailing module path, function name), outermost first."""
    python = [_python_frame(match) for match in _PYTHON_FRAME.finditer(stack)]
    if python:
        return python
    lines = [line for line in stack.splitlines() if line.strip()]
    foreign = [frame for frame in map(_foreign_frame, lines) if frame is not None]
    return foreign or [(_generic_line(line), "") for line in lines]


def _error_type(name: str) -> str:
    # Only `builtins.` is noise: `requests.exceptions.ConnectionError` is a different class
    # from the builtin `ConnectionError` and must stay distinct.
    return name.strip().removeprefix("builtins.")


def _digest(payload: object) -> str:
    encoded = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(encoded).hexdigest()[:16]


def _python_frame(match: re.Match[str]) -> Frame:
    return _short_path(match["path"]), _function(match["func"] or "")


def _foreign_frame(line: str) -> Frame | None:
    text = line.strip()
    jvm = _JVM_FRAME.fullmatch(text)
    if jvm:
        return _location(jvm["src"] or jvm["loc"]), _function(_JVM_MODULE.sub("", jvm["func"]))
    v8 = _V8_FRAME.fullmatch(text)
    if v8:
        return _location(v8["loc"] or v8["bare"]), _function(v8["func"] or "")
    gecko = _GECKO_FRAME.fullmatch(text)
    return (_location(gecko["loc"]), _function(gecko["func"])) if gecko else None


def _generic_line(line: str) -> str:
    # Unknown stack format: keep the whole line, minus what differs between runs and hosts.
    return normalize_message(_ABSOLUTE_PATH.sub(lambda match: _short_path(match[0]), line))


def _function(name: str) -> str:
    return _GENERATED_ID.sub("<n>", _ADDRESS.sub("<addr>", name.strip()))


def _location(location: str) -> str:
    without_line = _LINE_SUFFIX.sub("", location.strip())
    return _short_path(_URL_ORIGIN.sub("", without_line))


def _short_path(path: str) -> str:
    """Drop the machine-specific prefix: keep what follows an install root, else the last 2 parts."""
    unified = _SEPARATORS.sub("/", path.strip())
    roots = list(_INSTALL_ROOT.finditer(unified))
    if roots:
        return unified[roots[-1].end() :]
    return "/".join(unified.rstrip("/").split("/")[-2:])
