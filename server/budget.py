"""Answers sized for the reader's context window.

Every read tool takes `detail` and `max_tokens`:

* `detail` picks the fields of each record (summary: ids, status, error type and message, timing;
  standard: what a list shows today; full: stacks, results, inputs, usage, event data) and how
  long free text may be before it is clipped (CAPS). Clipped text ends in `…[+N chars]` and is
  named in `clipped_fields`; `rest` says where the whole text is (tasks_get, or the resource
  `task-history://execution/{span_id}`).
* `max_tokens` is a budget for the whole answer: the structured content plus the text block. An
  answer over it first loses fields, in each answer's fixed DROP_ORDER (stacks, results, inputs
  and event data go first; ids, status, error type and message and timing are never dropped),
  then items from the end of its lists (TRIM; an entry `(name, floor)` keeps at least `floor`
  items of that list, so a later entry is cut before its last items). Whatever went is named:
  `dropped_fields`, `omitted` (items), `truncated`, and `rest` (the cursor or the call that gets it).

`truncated` is true exactly when something the answer would otherwise hold at this detail is not
in it: a dropped field, an omitted item, or clipped text. Nothing is cut silently.

The token estimate is `ceil(UTF-8 bytes of compact JSON / 3)` (`estimate_tokens`). Tokenizers
give about 4 characters of English prose per token but only 2 to 3 for the ids, hashes, numbers
and punctuation that fill these answers, so dividing by 3 over-counts prose and is close for the
rest: an answer inside its budget by this estimate is inside it for a real tokenizer too, give or
take. `MAX_TOKENS_LIMIT` (16,000) keeps the largest answer well under the ~25,000-token
tool-result limit of common clients even where the estimate runs low.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import itertools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self

from pydantic import Field, PrivateAttr

from server.answer import ToolResult
from store.errors import InvalidInput
from store.ids import cursor_int

Detail = Literal["summary", "standard", "full"]
TextKind = Literal["message", "stack", "result", "data"]

DEFAULT_MAX_TOKENS = 8_000
MIN_MAX_TOKENS = 1_000
MAX_TOKENS_LIMIT = 16_000
BYTES_PER_TOKEN = 3
CLIP_MARK = "…[+"

# Characters of free text kept at each detail level (0: the field is not shown at that level).
CAPS: dict[Detail, dict[TextKind, int]] = {
    "summary": {"message": 120, "stack": 0, "result": 0, "data": 0},
    "standard": {"message": 300, "stack": 1_500, "result": 1_500, "data": 500},
    "full": {"message": 2_000, "stack": 6_000, "result": 6_000, "data": 4_000},
}


def estimate_tokens(value: Any) -> int:
    """Tokens a client spends on `value`: ceil(UTF-8 bytes of its compact JSON / 3); a str is
    measured as it is (a text block)."""
    text = value if isinstance(value, str) else compact_json(value)
    return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN)


def compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


@dataclass
class Shape:
    """The detail level an answer is built at, and the text it had to clip. `scale` shrinks the
    caps for an answer whose essential text alone would not fit its budget (see `fit_shaped`)."""

    detail: Detail = "standard"
    clipped: set[str] = field(default_factory=set)
    scale: float = 1.0

    def cap(self, kind: TextKind) -> int:
        return int(CAPS[self.detail][kind] * self.scale)

    def text(self, value: str | None, kind: TextKind, where: str, *, one_line: bool = False) -> str | None:
        """`value` cut to this level's cap for `kind`, marked, and noted in `clipped` (as `where`)."""
        if value is None:
            return None
        if one_line:
            value = " ".join(value.split())
        cap = self.cap(kind)
        if len(value) <= cap:
            return value
        self.clipped.add(where)
        return f"{value[:cap]}{CLIP_MARK}{len(value) - cap} chars]"

    def data(self, value: dict[str, Any], where: str, whole: Callable[[], str]) -> dict[str, Any]:
        """Event data whose JSON is over the cap becomes `{"clipped": <its JSON cut>, "chars": n,
        "whole": <the resource with all of it>}` (`whole` makes its URI, only for clipped data)."""
        encoded = compact_json(value)
        if len(encoded) <= self.cap("data"):
            return value
        return {"clipped": self.text(encoded, "data", where), "chars": len(encoded), "whole": whole()}


STANDARD = Shape()


class Sized(ToolResult):
    """Base of the read tools' answers: what the budget and the detail level left out."""

    detail: str = Field("standard", description="summary | standard | full, as asked")
    truncated: bool = Field(
        False,
        description="true when anything was left out or cut: see dropped_fields, clipped_fields, omitted",
    )
    dropped_fields: list[str] = Field(
        default_factory=list,
        description="fields left out of every item to fit max_tokens, e.g. events[].data",
    )
    clipped_fields: list[str] = Field(
        default_factory=list, description="text fields cut short (they end in '…[+N chars]')"
    )
    omitted: int = Field(0, description="items left out to fit max_tokens")
    rest: str | None = Field(
        None, description="how to get what was left out (a cursor, a call or a resource)"
    )

    # Field paths into the answer ("events.*.data"): left out at a detail level, dropped in this
    # order to fit the budget, and the lists trimmed (from their end) after that.
    EXCLUDED: ClassVar[dict[str, tuple[str, ...]]] = {}
    DROP_ORDER: ClassVar[tuple[str, ...]] = ()
    TRIM: ClassVar[tuple[str | tuple[str, int], ...]] = ()
    OMIT_NONE: ClassVar[bool] = False  # the newer answers leave out null fields instead of sending them
    # False for an answer whose item is a record it always holds (tasks_get): its lists trimmed to
    # nothing still leave an answer, not an empty page (fit_shaped's _emptied).
    TRIMMED_LISTS_ARE_ITS_ITEMS: ClassVar[bool] = True
    _unfit_budget: int | None = PrivateAttr(default=None)  # set when no item fits (_nothing_fits)

    def trimmed(self, name: str, keep: int) -> Self:
        """This answer with only the first `keep` items of list `name`."""
        items = getattr(self, name)
        return self.model_copy(update={name: items[:keep], "omitted": self.omitted + len(items) - keep})

    def rest_hint(self) -> str | None:
        """The call that gets what was left out (called only when something was)."""
        return None

    def settled(self, clipped: set[str] | None = None) -> Self:
        """With `truncated`, `clipped_fields` and `rest` brought up to date."""
        names = sorted(set(self.clipped_fields) | (clipped or set()))
        truncated = bool(self.dropped_fields or names or self.omitted)
        update: dict[str, Any] = {"clipped_fields": names, "truncated": truncated}
        probe = self.model_copy(update=update)
        rest = probe.rest_hint() if truncated else self.rest
        if self._unfit_budget is not None:
            rest = (
                f"Not one item fits max_tokens={self._unfit_budget}, even with its text clipped to the "
                f"shortest: call again with a larger max_tokens (up to {MAX_TOKENS_LIMIT:,}) or "
                "detail='summary'."
            )
        return probe.model_copy(update={"rest": rest})


@dataclass(frozen=True)
class Fitted:
    answer: Sized
    content: dict[str, Any]
    text: str
    tokens: int
    excluded: tuple[str, ...]

    def redone(self, answer: Sized) -> Fitted:
        """`answer` (this one with a value filled in after fitting) measured the same way."""
        return _measure(answer.settled(), list(self.excluded))


def fit(answer: Sized, max_tokens: int) -> Fitted:
    """`answer` within `max_tokens`: drop fields in DROP_ORDER, then trim lists in TRIM order.

    Each drop that leaves the answer far over its budget is taken without measuring it (a
    measurement dumps and renders the whole answer): the bytes it takes out of the content already
    measured say it shrinks the answer and that the next drop is needed too, which is what
    measuring would have decided. Whatever is close to the budget, or unclear, is measured."""
    excluded = list(answer.EXCLUDED.get(answer.detail, ()))
    best = _measure(answer.settled(), excluded)
    if best.tokens <= max_tokens:
        return best
    ahead = _Unmeasured(best)
    for path in answer.DROP_ORDER:
        if path in ahead.excluded:
            continue
        removed, note = ahead.bytes_at(path), len(shown(path).encode()) + 3
        if removed == 0:
            continue  # the field is not there (or is empty): nothing to drop
        clearly_smaller = removed > note + _CLEAR_BYTES
        if clearly_smaller and ahead.tokens_without(removed - note) > max_tokens + _MARGIN:
            ahead.drop(path, removed - note)  # clearly still over: the next drop is needed too
            continue
        if clearly_smaller:
            ahead.drop(path, removed - note)
            best = ahead.measured()
        else:  # it may save less than its note costs: compare with the answer measured without it
            best = ahead.measured()
            ahead = _Unmeasured(best)
            ahead.drop(path, removed - note)
            candidate = ahead.measured()
            if candidate.tokens >= best.tokens:
                ahead = _Unmeasured(best)
                continue
            best = candidate
        if best.tokens <= max_tokens:
            return best
        ahead = _Unmeasured(best)
    best = ahead.measured()
    for entry in answer.TRIM:
        name, floor = (entry, 0) if isinstance(entry, str) else entry
        best = _trim(best, name, list(best.excluded), max_tokens, floor)
        if best.tokens <= max_tokens:
            return best
    return best


# An unmeasured drop must take out this many bytes more than its note adds, and leave the answer
# this many tokens over its budget by estimate: the text's cut note grows a little with each drop.
_CLEAR_BYTES = 30
_MARGIN = 100


class _Unmeasured:
    """A measured answer and the drops taken after it without measuring: their paths, the content
    with them taken out, and the tokens that leaves by estimate."""

    def __init__(self, base: Fitted) -> None:
        self.base, self.paths, self.tokens = base, [], float(base.tokens)
        self.content: dict[str, Any] = json.loads(compact_json(base.content))

    @property
    def excluded(self) -> list[str]:
        return [*self.base.excluded, *self.paths]

    def bytes_at(self, path: str) -> int:
        """Compact-JSON bytes of every value at `path` (with its key and comma) in the content."""
        return sum(len(compact_json(v).encode()) + len(k) + 4 for _, k, v in _at(self.content, path))

    def tokens_without(self, saved: int) -> float:
        return self.tokens - saved / BYTES_PER_TOKEN

    def drop(self, path: str, saved: int) -> None:
        for node, key, _ in list(_at(self.content, path)):
            del node[key]
        self.paths.append(path)
        self.tokens = self.tokens_without(saved)

    def measured(self) -> Fitted:
        if not self.paths:
            return self.base
        names = [*self.base.answer.dropped_fields, *(shown(p) for p in self.paths)]
        return _measure(
            self.base.answer.model_copy(update={"dropped_fields": names}).settled(), self.excluded
        )


def _at(content: dict[str, Any], path: str) -> list[tuple[dict[str, Any], str, Any]]:
    """(parent, key, value) for every value at `path` ("events.*.data") in dumped content."""
    *parents, leaf = path.split(".")
    nodes: list[Any] = [content]
    for part in parents:
        if part == "*":
            nodes = [item for node in nodes if isinstance(node, list) for item in node]
        else:
            nodes = [node[part] for node in nodes if isinstance(node, dict) and part in node]
    if leaf == "*":
        raise ValueError(f"a drop path names a field, not every item: {path}")
    return [(node, leaf, node[leaf]) for node in nodes if isinstance(node, dict) and leaf in node]


SCALES = (1.0, 0.5, 0.2, 0.05)


def fit_shaped(build: Callable[[Shape], Sized], detail: Detail, max_tokens: int) -> Fitted:
    """`fit` the answer `build` makes at `detail`; when even its least (ids, status, error, timing)
    is over budget, or fits only by leaving out every item it has, build it again with shorter text
    caps, which clip more and say so. (An answer of no items that says "more" gave a walker nothing
    to page on: three failures with long messages at detail=full came back as empty pages.)"""
    for scale in SCALES:
        built = build(Shape(detail, scale=scale))
        fitted = fit(built, max_tokens)
        if fitted.tokens <= max_tokens and not _emptied(built, fitted.answer):
            return fitted
    return _nothing_fits(fitted, max_tokens) if _emptied(built, fitted.answer) else fitted


def _nothing_fits(fitted: Fitted, max_tokens: int) -> Fitted:
    """An answer that fits only empty: no cursor (a page of nothing leads nowhere new) and a `rest`
    that says what would show the items."""
    answer = fitted.answer
    update = {"next_cursor": None} if "next_cursor" in type(answer).model_fields else {}
    unfit = answer.model_copy(update=update)
    unfit._unfit_budget = max_tokens
    return _measure(unfit.settled(), list(fitted.excluded))


def _emptied(built: Sized, fitted: Sized) -> bool:
    """Whether fitting left out every item of `built`'s trimmed lists, and it had some."""
    if not built.TRIMMED_LISTS_ARE_ITS_ITEMS:
        return False

    def items(answer: Sized) -> int:
        names = {entry if isinstance(entry, str) else entry[0] for entry in answer.TRIM}
        return sum(len(getattr(answer, name)) for name in names)

    return items(fitted) == 0 < items(built)


def _trim(best: Fitted, name: str, excluded: list[str], max_tokens: int, floor: int = 0) -> Fitted:
    """The longest head of list `name` that fits, but at least its first `floor` items (an empty
    list when `floor` is 0) even if those do not fit: a later TRIM entry cuts more.

    Measuring a candidate dumps and renders the whole answer, so a plain binary search over a
    timeline's 240 steps measured it nine times. The items' own JSON sizes say where between two
    measured heads the budget runs out (an interpolation search); a few such guesses settle it,
    and a binary search finishes whatever they leave, so the answer is the same either way."""
    base = best.answer
    count = len(getattr(base, name))
    if count <= floor:
        return best
    found = _measure(base.trimmed(name, floor).settled(), excluded)
    head = _HeadSizes(best.content.get(name, [])[floor:], floor)
    # The two latest measured heads, (items, tokens): a secant through them (not the bracket's ends,
    # which converges from one side when items near the head are longer than those at the tail).
    points = [(floor, found.tokens), (count, best.tokens)]
    low, high = floor + 1, count - 1  # the largest head that fits is found's, or in [low, high]
    for _ in range(_GUESSES):
        if low > high:
            return found
        guess = min(max(head.predict(points[-2], points[-1], max_tokens), low), high)
        measured = _measure(base.trimmed(name, guess).settled(), excluded)
        points.append((guess, measured.tokens))
        if measured.tokens <= max_tokens:
            found, low = measured, guess + 1
        else:
            high = guess - 1
    while low <= high:
        middle = (low + high + 1) // 2
        candidate = _measure(base.trimmed(name, middle).settled(), excluded)
        if candidate.tokens <= max_tokens:
            found, low = candidate, middle + 1
        else:
            high = middle - 1
    return found


_GUESSES = 4


class _HeadSizes:
    """Cumulative compact-JSON bytes of a list's items after the first `floor`."""

    def __init__(self, items: list[Any], floor: int) -> None:
        self.floor = floor
        self.cumulative = list(
            itertools.accumulate((len(compact_json(i).encode()) + 1 for i in items), initial=0)
        )

    def predict(self, one: tuple[int, int], other: tuple[int, int], max_tokens: int) -> int:
        """The longest head within `max_tokens`, reading tokens as linear in the items' bytes through
        two measured heads (items, tokens). The text rendering grows with the items too, which the
        measured points account for."""
        (k_one, t_one), (k_other, t_other) = sorted((one, other))
        c_one, c_other = self.cumulative[k_one - self.floor], self.cumulative[k_other - self.floor]
        if t_other <= t_one or c_other <= c_one:
            return (k_one + k_other) // 2
        target = c_one + (max_tokens - t_one) * (c_other - c_one) / (t_other - t_one)
        return self.floor + bisect.bisect_right(self.cumulative, target) - 1


def _measure(answer: Sized, excluded: list[str]) -> Fitted:
    content = _content(answer, excluded)
    kept = [name for name in answer.clipped_fields if _still_clipped(content, name)]
    if kept != answer.clipped_fields:
        # The items (or the field) that held the clipped text are gone: it is no longer a cut here.
        answer = answer.model_copy(update={"clipped_fields": kept}).settled()
        content = _content(answer, excluded)
    text = answer.render()
    return Fitted(answer, content, text, estimate_tokens(content) + estimate_tokens(text), tuple(excluded))


def _content(answer: Sized, excluded: list[str]) -> dict[str, Any]:
    """The structured content. An OMIT_NONE answer leaves null fields out of its items (rows of
    mostly empty fields), but its own fields are always there, null or not: a client reads
    `rest` or `next_cursor` of every answer the same way."""
    content = answer.model_dump(mode="json", exclude=exclusion(excluded), exclude_none=answer.OMIT_NONE)
    if not answer.OMIT_NONE:
        return content
    absent = [name for name in type(answer).model_fields if name not in content and name not in excluded]
    return {**content, **{name: None for name in absent if getattr(answer, name) is None}}


def _still_clipped(content: dict[str, Any], name: str) -> bool:
    """Whether any text at `name` (`events[].data`) in `content` still carries the clip mark."""
    nodes: list[Any] = [content]
    for part in name.split("."):
        key, many = (part[:-2], True) if part.endswith("[]") else (part, False)
        nodes = [node[key] for node in nodes if isinstance(node, dict) and key in node]
        nodes = [item for node in nodes for item in node] if many else nodes
    return any(CLIP_MARK in text for node in nodes for text in _texts(node))


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for item in value.values() for t in _texts(item)]
    if isinstance(value, list):
        return [t for item in value for t in _texts(item)]
    return []


def shown(path: str) -> str:
    """`events.*.data` as a reader sees it: `events[].data`."""
    return path.replace(".*", "[]")


def exclusion(paths: list[str]) -> dict[str, Any]:
    """pydantic's nested `exclude` for field paths such as `executions.*.error.stack`."""
    spec: dict[str, Any] = {}
    for path in paths:
        node = spec
        *parents, leaf = ["__all__" if part == "*" else part for part in path.split(".")]
        for part in parents:
            child = node.setdefault(part, {})
            if child is True:
                break
            node = child
        else:
            node[leaf] = True
    return spec


def item_paths(prefix: str, paths: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{prefix}.{path}" for path in paths)


# ---- offset cursors ------------------------------------------------------------------------
# For answers built whole and cut to fit (a trace, a timeline, failure groups): where the next
# answer starts, bound to what it was issued for so it cannot be replayed against another call.


def encode_offsets(key: str, *offsets: int) -> str:
    raw = compact_json([*offsets, _digest(key)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_offsets(token: str, key: str, count: int) -> tuple[int, ...]:
    """The offsets in `token`; InvalidInput when it is garbled or was issued for another `key`."""
    try:
        *offsets, digest = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        values = tuple(cursor_int(o) for o in offsets)
        if len(values) != count or min(values) < 0:
            raise ValueError(token)
    except (ValueError, TypeError, RecursionError) as exc:
        raise InvalidInput(
            "cursor",
            "is not a cursor this server issued",
            hint="Pass next_cursor from the previous answer unchanged.",
        ) from exc
    if digest != _digest(key):
        raise InvalidInput(
            "cursor",
            "was issued for a different call",
            hint="Repeat the call's other arguments, or omit cursor.",
        )
    return values


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:10]
