"""Broken text on the wire becomes a mark the tools refuse by field name, instead of a parse error.

A JSON-RPC message can carry text that is not Unicode in two ways: bytes that are not UTF-8 at all,
and `\\ud800`-style escapes of a lone surrogate. Left alone, the first made the whole HTTP body a
parse error (-32700, no field named), or over stdio was silently replaced by U+FFFD and stored; the
second parsed in one protocol era and not the other, and over stdio got no answer at all. Both
transports pass each message through `mark_broken_text` first: every broken character becomes
`BROKEN`, a Unicode noncharacter that is valid UTF-8 and valid JSON, so the message parses and
`server.errors.find_invalid_text` answers with a tool error that names the field. Pure; no I/O.
"""

from __future__ import annotations

import re

BROKEN = "\ufdd0"
"""A noncharacter (not for interchange), so no real caller's text contains it."""
_BROKEN_ESCAPE = "\\ufdd0"
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_ESCAPED_BYTES = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of non-UTF-8 bytes


def mark_broken_text(raw: bytes) -> bytes:
    """`raw` with each non-UTF-8 byte and each lone-surrogate escape replaced by BROKEN."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = _ESCAPED_BYTES.sub(BROKEN, raw.decode("utf-8", "surrogateescape"))
    return mark_lone_surrogate_escapes(text).encode("utf-8")


def mark_lone_surrogate_escapes(text: str) -> str:
    """Replace `\\uD8xx` escapes that are not half of a valid pair (and not themselves escaped)."""
    if not _SURROGATE_ESCAPE.search(text):
        return text  # the common case: one scan, no copy
    out: list[str] = []
    i, end = 0, len(text)
    while i < end:
        slash = text.find("\\", i)
        if slash < 0:
            out.append(text[i:])
            break
        out.append(text[i:slash])
        escape, i = _read_escape(text, slash)
        out.append(escape)
    return "".join(out)


def _read_escape(text: str, at: int) -> tuple[str, int]:
    """The escape starting at `at` (possibly rewritten) and the index after it."""
    if text[at + 1 : at + 2] != "u":
        return text[at : at + 2], at + 2  # \\, \", \n ...: kept, and never read as the start of \u
    unit = _unit(text, at)
    if unit is None or not 0xD800 <= unit <= 0xDFFF:
        return text[at : at + 6], at + 6
    low = _unit(text, at + 6) if unit <= 0xDBFF else None
    if low is not None and 0xDC00 <= low <= 0xDFFF:
        return text[at : at + 12], at + 12  # a valid surrogate pair: one real character
    return _BROKEN_ESCAPE, at + 6


def _unit(text: str, at: int) -> int | None:
    """The UTF-16 code unit of a `\\uXXXX` escape at `at`, if one is there."""
    digits = text[at + 2 : at + 6]
    if text[at : at + 2] != "\\u" or len(digits) != 4:
        return None
    try:
        return int(digits, 16)
    except ValueError:
        return None
