"""server.wire_text: which characters on the wire are broken, and that nothing else changes."""

from __future__ import annotations

import json

import pytest

from server.wire_text import BROKEN, mark_broken_text

CASES = [
    ("plain text is untouched", b'{"a": "ok \\u00e9"}', "ok \u00e9"),
    ("non-UTF-8 bytes are marked one by one", b'{"a": "x\xff\xfey"}', f"x{BROKEN}{BROKEN}y"),
    ("a lone high surrogate escape is marked", b'{"a": "bad\\ud800"}', f"bad{BROKEN}"),
    ("a lone low surrogate escape is marked", b'{"a": "\\ude00x"}', f"{BROKEN}x"),
    ("a high surrogate at the very end is marked", b'{"a": "\\ud83d"}', BROKEN),
    ("a valid surrogate pair stays one character", b'{"a": "\\ud83d\\ude00"}', "\U0001f600"),
    ("an escaped backslash before u is not an escape", b'{"a": "\\\\ud800"}', "\\ud800"),
    ("escapes around a mark are kept", b'{"a": "\\n\\ud800\\\\"}', f"\n{BROKEN}\\"),
]


@pytest.mark.parametrize(("raw", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_broken_characters_and_only_those_are_marked(raw: bytes, expected: str) -> None:
    marked = mark_broken_text(raw)
    marked.decode("utf-8")  # always valid UTF-8 afterwards
    assert json.loads(marked) == {"a": expected}


def test_a_clean_body_comes_back_byte_for_byte() -> None:
    body = json.dumps({"a": "\U0001f600 caf\u00e9", "b": [1, 2]}, ensure_ascii=False).encode()
    assert mark_broken_text(body) == body
