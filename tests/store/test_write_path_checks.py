"""The write path's cheaper checks give the answers of the full ones: check_encodable's walk of the
models' own fields (store.store._plainly_encodable) against model_dump + JSON, the remembered
scrub and stack hash against computing them afresh, and the identifiers' formatting against
strftime."""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from store import InvalidInput
from store.fingerprint import _digest_of_frames, stack_hash
from store.ids import execution_id, session_id
from store.models import ErrorInput, FinishRequest, Retrieval, StartRequest
from store.scrub import _scrub_text, scrub_text
from store.store import _unstorable_path, check_encodable
from store.timeutil import iso_z


class Colour(enum.StrEnum):
    RED = "r\ud800"


class Odd:
    def __str__(self) -> str:
        return "odd\udc80"


ATTRIBUTES: list[dict[str, Any]] = [
    {},
    {"plain": "text", "n": 1, "x": 1.5, "ok": True, "none": None},
    {"é": ["ü", {"ключ": "значение"}], "emoji \U0001f600": ("\U0001f600",)},
    {"bad\ud800": 1},
    {"k": ["fine", {"deep": "b\udfff"}]},
    {"when": datetime(2025, 1, 1, tzinfo=UTC)},
    {"colour": Colour.RED},
    {"odd": Odd()},
    {"set": {"a"}},
    {"nested": {"k": {"x": ["y", 1, None]}}},
    {"deep": [[[[[[[[["x\ud800"]]]]]]]]]},
    {"nul": "a\x00b"},
    {"key\x00": 1},
    {"deep": [[{"x": ["y\x00"]}]]},
    {"escaped, not a NUL": "a\\u0000b"},
]


def full_check(model: Any) -> str | None:
    """What the full check decides, without the walk: the field it names, if any (a string that is
    not UTF-8, or one holding NUL, which json.dumps writes as the escape \\u0000)."""
    import json

    dumped = model.model_dump()
    try:
        text = json.dumps(dumped, ensure_ascii=False, default=str)
        text.encode("utf-8")
    except (UnicodeEncodeError, TypeError, ValueError):
        pass
    else:
        if "\\u0000" not in text:
            return None
    found = _unstorable_path(dumped, "")
    return None if found is None else found[0] or "input"


@pytest.mark.parametrize("attributes", ATTRIBUTES, ids=range(len(ATTRIBUTES)))
def test_the_walk_refuses_exactly_what_the_full_check_refuses(attributes: dict[str, Any]) -> None:
    for model in (
        StartRequest(task_id="t", attributes=attributes),
        StartRequest(task_id="t", retrieval=Retrieval(filters=attributes)),
        FinishRequest(span_id="s", status="failed", error=ErrorInput(type="E", message="m", stack="s")),
    ):
        expected = full_check(model)
        if expected is None:
            check_encodable(model)
        else:
            with pytest.raises(InvalidInput) as refused:
                check_encodable(model)
            assert refused.value.field == expected


def test_a_bad_string_in_a_plain_field_is_named() -> None:
    with pytest.raises(InvalidInput) as refused:
        check_encodable(FinishRequest(span_id="s", status="success", result="done \ud800"))
    assert refused.value.field == "result"


def test_a_circular_value_is_left_to_the_full_check() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    model = StartRequest.model_construct(task_id="t", attributes=loop)
    with pytest.raises(Exception) as before:
        full_check(model)
    with pytest.raises(before.type):
        check_encodable(model)


TEXTS = [
    "",
    "success: 12 items processed",
    "mail ann@example.com from 10.0.0.1 token=abc123secret",
    'Traceback (most recent call last):\n  File "/srv/app/x.py", line 3, in f\nKeyError: 42',
    "x" * 5000,  # past the memo's size: scrubbed afresh each time
]


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_a_remembered_scrub_is_the_scrub(text: str) -> None:
    assert scrub_text(text) == _scrub_text(text)
    assert scrub_text(text) == _scrub_text(text)  # the second time from the memo


@pytest.mark.parametrize(
    "stack",
    [
        None,
        "",
        'Traceback (most recent call last):\n  File "/home/a/app/jobs.py", line 12, in run\nValueError: bad',
        "at com.acme.Job.run(Job.java:42)\nat com.acme.Main.main(Main.java:7)",
        "no frames here at all",
        'File "/x/y.py", line 1, in f\n' * 2000,  # past the memo's size
    ],
)
def test_a_remembered_stack_hash_is_the_stack_hash(stack: str | None) -> None:
    for message in ("user 42 missing", "user 43 missing"):
        first, again = stack_hash("ValueError", stack, message), stack_hash("ValueError", stack, message)
        assert first == again
        digest = _digest_of_frames("ValueError", stack) if stack else None
        if digest is not None:
            assert first == digest


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2025, 11, 4, 18, 29, 12, 123456, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(2200, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(999, 1, 1, tzinfo=UTC),
    ],
)
def test_identifiers_are_formatted_as_strftime_formats_them(moment: datetime) -> None:
    span = "d23f0824-128b-4f33-8c5c-7fd0a6a3a450"
    assert execution_id("Task A", moment, span) == (
        f"task_exec_task_a_{moment.strftime('%Y%m%dT%H%M%SZ')}_{span[:8]}"
    )
    in_utc = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    assert iso_z(moment, seconds=True) == f"{in_utc}Z"
    assert session_id("Task A", moment, span) == f"task:Task A:{in_utc}Z:{span[:4]}"
