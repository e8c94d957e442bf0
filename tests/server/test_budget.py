"""server.budget: the token estimate, clipping, the fixed drop order, trimming, offset cursors, and
the rule that makes dropping safe: every field an answer may leave out is optional in its schema."""

from __future__ import annotations

import types
import typing
from typing import Any, ClassVar, Union, get_args, get_origin

import pytest
from pydantic import BaseModel, Field

from server.budget import (
    CAPS,
    CLIP_MARK,
    Shape,
    Sized,
    _measure,
    decode_offsets,
    encode_offsets,
    estimate_tokens,
    exclusion,
    fit,
    shown,
)
from server.listing import compact_schema
from server.results import ExecutionDocument, ExecutionList, LastFailedResult, TraceResult
from server.results_debug import FailurePatternsResult, SideEffectsResult, StatsResult, TimelineResult
from store.errors import InvalidInput

ANSWERS: list[type[Sized]] = [
    ExecutionList,
    TraceResult,
    LastFailedResult,
    ExecutionDocument,
    FailurePatternsResult,
    StatsResult,
    TimelineResult,
    SideEffectsResult,
]


def test_the_estimate_is_a_third_of_the_utf8_bytes_of_compact_json() -> None:
    assert estimate_tokens({"a": 1}) == 3  # {"a":1} is 7 bytes
    assert estimate_tokens("x" * 9) == 3 and estimate_tokens("é") == 1  # 2 bytes
    assert estimate_tokens(["日本"]) == 4  # ["日本"] is 10 bytes


def test_clipping_marks_the_text_and_names_the_field() -> None:
    shape = Shape("summary")
    assert shape.text("short", "message", "x.message") == "short"
    clipped = shape.text("y" * 500, "message", "x.message")
    cap = CAPS["summary"]["message"]
    assert clipped == "y" * cap + f"{CLIP_MARK}{500 - cap} chars]" and shape.clipped == {"x.message"}
    assert Shape().text("a \n  b", "message", "m", one_line=True) == "a b"


def test_event_data_over_its_cap_becomes_a_clipped_json_text() -> None:
    shape = Shape("standard")
    data = shape.data({"blob": "z" * 2000}, "events[].data", lambda: "task-history://event/e-1")
    assert data["chars"] > 2000 and CLIP_MARK in data["clipped"] and shape.clipped == {"events[].data"}
    assert data["whole"] == "task-history://event/e-1"  # where all of it is
    assert shape.data({"small": 1}, "events[].data", lambda: "task-history://event/e-2") == {"small": 1}


def test_exclusion_builds_pydantics_nested_exclude() -> None:
    assert exclusion(["events.*.data", "events.*.event_id", "document.content.text"]) == {
        "events": {"__all__": {"data": True, "event_id": True}},
        "document": {"content": {"text": True}},
    }
    assert exclusion(["io", "io.tool_calls"]) == {"io": True}


class _Row(BaseModel):
    id: str
    stack: str | None = None
    note: str | None = None


class _Answer(Sized):
    rows: list[_Row]
    returned: int = 0

    DROP_ORDER: ClassVar[tuple[str, ...]] = ("rows.*.stack", "rows.*.note")
    TRIM: ClassVar[tuple[str, ...]] = ("rows",)

    def trimmed(self, name: str, keep: int) -> _Answer:
        return super().trimmed(name, keep).model_copy(update={"returned": keep})

    def rest_hint(self) -> str | None:
        return "call again"

    def render(self) -> str:
        return f"{self.returned} rows"


def _answer(n: int) -> _Answer:
    rows = [_Row(id=f"row-{i}", stack="s" * 300, note="n" * 30) for i in range(n)]
    return _Answer(rows=rows, returned=n)


def test_an_answer_within_budget_is_untouched_and_says_so() -> None:
    fitted = fit(_answer(3), 8000)
    assert fitted.content["truncated"] is False and fitted.content["rest"] is None
    assert fitted.content["rows"][0]["stack"] == "s" * 300


def test_fields_go_in_the_fixed_order_before_any_item() -> None:
    one_drop = fit(_answer(20), 1700)
    assert one_drop.content["dropped_fields"] == ["rows[].stack"] and one_drop.content["omitted"] == 0
    assert all("stack" not in row and "note" in row for row in one_drop.content["rows"])
    items = fit(_answer(200), 1000)
    assert items.content["dropped_fields"] == ["rows[].stack", "rows[].note"]
    assert 0 < items.content["returned"] < 200 and items.content["omitted"] == 200 - items.content["returned"]
    assert items.content["truncated"] is True and items.content["rest"] == "call again"
    assert items.tokens <= 1000 and items.tokens == estimate_tokens(items.content) + estimate_tokens(
        items.text
    )


class _Wide(BaseModel):
    id: str
    stack: str | None = None
    note: str | None = None
    flag: str | None = None  # a field shorter than the note that names it when dropped
    tail: str | None = None


class _Drops(Sized):
    rows: list[_Wide]

    DROP_ORDER: ClassVar[tuple[str, ...]] = ("rows.*.stack", "rows.*.flag", "rows.*.note", "rows.*.tail")
    TRIM: ClassVar[tuple[str, ...]] = ("rows",)
    OMIT_NONE: ClassVar[bool] = True

    def render(self) -> str:
        return f"{len(self.rows)} rows"


def test_fields_are_dropped_in_order_and_no_more_of_them_than_the_budget_needs() -> None:
    rows = [
        _Wide(id=f"row-{i}", stack="s" * (40 + i), note="n" * 25, flag="f" if i == 0 else None, tail="t" * 60)
        for i in range(40)
    ]
    answer = _Drops(rows=rows)
    for max_tokens in range(300, 3_200, 37):
        fitted = fit(answer, max_tokens)
        dropped = fitted.content["dropped_fields"]
        assert dropped == [shown(p) for p in _Drops.DROP_ORDER if shown(p) in dropped]
        if fitted.content["omitted"]:  # rows went only because every field that saves bytes went first
            assert fitted.tokens <= max_tokens and dropped == ["rows[].stack", "rows[].note", "rows[].tail"]
            every_row = answer.model_copy(update={"dropped_fields": dropped}).settled()
            assert _measure(every_row, list(fitted.excluded)).tokens > max_tokens
            continue
        assert "rows[].flag" not in dropped  # one row's flag saves less than the note naming it costs
        assert fitted.tokens <= max_tokens
        if dropped:  # keeping the last field dropped would not have fitted
            kept = fitted.answer.model_copy(update={"dropped_fields": dropped[:-1]}).settled()
            assert _measure(kept, list(fitted.excluded[:-1])).tokens > max_tokens


class _Pair(Sized):
    rows: list[_Row]
    extras: list[_Row]
    returned: int = 0

    TRIM: ClassVar[tuple[str | tuple[str, int], ...]] = (("rows", 1), "extras", "rows")

    def render(self) -> str:
        return f"{len(self.rows)} rows"


def test_a_trim_floor_keeps_the_first_item_while_a_later_list_is_cut() -> None:
    rows = [_Row(id=f"row-{i}", note="n" * 400) for i in range(10)]
    fitted = fit(_Pair(rows=rows, extras=rows), 1000)
    assert len(fitted.content["rows"]) == 1 and len(fitted.content["extras"]) < 10
    assert fitted.tokens <= 1000 and fitted.content["omitted"] == 9 + 10 - len(fitted.content["extras"])
    tight = fit(_Pair(rows=[_Row(id="x", note="n" * 5000)], extras=rows), 1000)
    assert tight.content["rows"] == [] and tight.content["extras"] == []  # the floor is not a promise


class _Lines(Sized):
    """Rows whose text line holds only the id, so the text does not grow with a row's JSON."""

    rows: list[_Row]

    TRIM: ClassVar[tuple[str, ...]] = ("rows",)

    def render(self) -> str:
        return "\n".join(row.id for row in self.rows)


@pytest.mark.parametrize("order", ["longest first", "shortest first", "mixed"])
def test_a_trim_keeps_the_longest_head_that_fits(order: str) -> None:
    lengths = [10 + (i * 37) % 400 for i in range(300)]
    if order != "mixed":
        lengths.sort(reverse=order == "longest first")
    answer = _Lines(rows=[_Row(id=f"row-{i}", note="n" * n) for i, n in enumerate(lengths)])
    for max_tokens in (500, 3_000, 9_000, 20_000, 40_000):
        fitted = fit(answer, max_tokens)
        kept = len(fitted.content["rows"])
        assert fitted.tokens <= max_tokens and fitted.content["omitted"] == 300 - kept
        if kept < 300:  # one more row would not have fitted
            assert (
                _measure(answer.trimmed("rows", kept + 1).settled(), list(fitted.excluded)).tokens
                > max_tokens
            )


def test_offset_cursors_round_trip_and_refuse_another_call() -> None:
    token = encode_offsets("trace-a", 3, 7)
    assert decode_offsets(token, "trace-a", 2) == (3, 7)
    for bad_token, key in (
        (token, "trace-b"),
        ("garbage!", "trace-a"),
        (encode_offsets("trace-a", 1), "trace-a"),
    ):
        with pytest.raises(InvalidInput):
            decode_offsets(bad_token, key, 2)


def _field_type(model: type[BaseModel], name: str) -> Any:
    return model.model_fields[name].annotation


def _models_in(annotation: Any) -> list[Any]:
    """The pydantic models (or dicts) a field's annotation can hold (through lists and Optional)."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType) or origin is list:
        return [m for arg in get_args(annotation) if arg is not type(None) for m in _models_in(arg)]
    if origin is dict or annotation is typing.Any or origin is typing.Annotated:
        return [dict]
    return [annotation]


def _optional_along(model: type[BaseModel], path: list[str]) -> bool:
    """Whether the last field on `path` (through `*` list items) may be left out of `model`."""
    name, *rest = path
    if name == "*":
        return _optional_along(model, rest)
    field = model.model_fields[name]
    if not rest:
        return not field.is_required()
    targets = _models_in(_field_type(model, name))
    return all(t is dict or _optional_along(t, rest) for t in targets)


@pytest.mark.parametrize("answer", ANSWERS, ids=lambda a: a.__name__)
def test_every_field_an_answer_may_leave_out_is_optional_in_its_output_schema(answer: type[Sized]) -> None:
    """The SDK validates structured content against the output model: a dropped required field
    would turn a fitted answer into a crash."""
    paths = {p for paths in answer.EXCLUDED.values() for p in paths} | set(answer.DROP_ORDER)
    for path in paths:
        assert _optional_along(answer, path.split(".")), f"{answer.__name__}: {path} is required"
    for entry in answer.TRIM:
        name = entry if isinstance(entry, str) else entry[0]
        assert get_origin(_field_type(answer, name)) is list, name


def test_compact_schemas_keep_their_meaning_without_titles_or_null_defaults() -> None:
    schema = {
        "title": "Args",
        "properties": {
            "title": {"title": "Title", "type": "string"},
            "limit": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None, "description": "n"},
        },
    }
    assert compact_schema(schema) == {
        "properties": {
            "title": {"type": "string"},
            "limit": {"type": ["integer", "null"], "description": "n"},
        }
    }
    assert compact_schema(schema, descriptions=False)["properties"]["limit"] == {"type": ["integer", "null"]}


def test_an_empty_answer_is_not_truncated() -> None:
    class Probe(Sized):
        items: list[int] = Field(default_factory=list, description="x")

        def render(self) -> str:
            return ""

    assert fit(Probe(), 1000).content["truncated"] is False
