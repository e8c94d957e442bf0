"""Reading import paths: a file or a folder of them (recursively, in name order, so daily
archives `lineage-YYYY-MM-DD.jsonl` go in date order), each line or document turned into
`Item`s, or into a `Problem` that names its place (`path:line`, `path#index`, `path: tasks[i]`).

Without a format, every line of a JSONL file and every document of a JSON file says what it is:
an export record has `record`, an experience document `"type": "TASK_EXECUTION"`, a lineage
event `event_type` and `task_id`, a task breakdown a `tasks` list. With one, every record is read
as that format."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from store import rules
from store.errors import StoreError
from store.importers.breakdown import breakdown_items, is_breakdown
from store.importers.documents import document_item, export_item, is_document, is_export_record
from store.importers.items import Item, Problem
from store.importers.lineage import is_lineage_line, lineage_event

Format = Literal["lineage", "breakdown", "experience", "export"]
FORMATS: tuple[Format, ...] = ("lineage", "breakdown", "experience", "export")
SUFFIXES = (".jsonl", ".ndjson", ".json")

Read = tuple[Item | Problem, int]
"""A record (or a problem) and how many bytes of the whole import have been read once it was."""


def files_of(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    return [path]


def total_bytes(files: list[Path]) -> int:
    return sum(f.stat().st_size for f in files if f.exists())


def read_all(files: list[Path], fmt: Format | None, policy: rules.Policy, prefix: str = "") -> Iterator[Read]:
    done = 0
    for file in files:
        size = file.stat().st_size if file.exists() else 0
        for found, position in _read_file(file, fmt, policy, prefix):
            yield found, done + position
        done += size


def _read_file(
    file: Path, fmt: Format | None, policy: rules.Policy, prefix: str
) -> Iterator[tuple[Item | Problem, int]]:
    try:
        raw = file.read_bytes()
    except OSError as exc:
        yield Problem(str(file), f"cannot read: {exc.strerror or exc}"), 0
        return
    whole = fmt == "breakdown" or (file.suffix.lower() == ".json" and fmt in (None, "experience"))
    if whole:
        yield from ((found, len(raw)) for found in _whole_document(file, raw, fmt, policy, prefix))
    else:
        yield from _lines(file, raw, fmt, policy, prefix)


def _whole_document(
    file: Path, raw: bytes, fmt: Format | None, policy: rules.Policy, prefix: str
) -> list[Item | Problem]:
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return [Problem(str(file), f"is not UTF-8 text ({exc.reason} at byte {exc.start})")]
    except json.JSONDecodeError as exc:
        return [Problem(f"{file}:{exc.lineno}", f"not valid JSON: {exc.msg} (column {exc.colno})")]
    if isinstance(doc, list):
        out: list[Item | Problem] = []
        for index, element in enumerate(doc):
            out.extend(_convert(element, f"{file}#{index}", fmt, policy, prefix))
        return out
    return _convert(doc, str(file), fmt, policy, prefix)


def _lines(
    file: Path, raw: bytes, fmt: Format | None, policy: rules.Policy, prefix: str
) -> Iterator[tuple[Item | Problem, int]]:
    position = 0
    for number, line in enumerate(raw.splitlines(keepends=True), start=1):
        position += len(line)
        if not line.strip():
            continue
        where = f"{file}:{number}"
        try:  # without its line ending, or an error at the end of the line is "line 2, column 1"
            obj = json.loads(line.rstrip(b"\r\n").decode("utf-8"))
        except UnicodeDecodeError as exc:
            yield Problem(where, f"is not UTF-8 text ({exc.reason} at byte {exc.start})"), position
            continue
        except json.JSONDecodeError as exc:
            yield Problem(where, f"not valid JSON: {exc.msg} (column {exc.colno})"), position
            continue
        for found in _convert(obj, where, fmt, policy, prefix):
            yield found, position


def _convert(
    obj: Any, where: str, fmt: Format | None, policy: rules.Policy, prefix: str
) -> list[Item | Problem]:
    kind = fmt or _detect(obj)
    if kind is None:
        return [Problem(where, "cannot tell what this record is (an export record, an experience document, "
                               "a lineage event or a task breakdown); pass --format")]  # fmt: skip
    try:
        if kind == "breakdown":
            if not is_breakdown(obj):
                raise ValueError("a task breakdown is an object with a 'tasks' list")
            return breakdown_items(obj, where, policy, prefix)
        if not isinstance(obj, dict):
            raise ValueError(f"expected a JSON object, found {type(obj).__name__}")
        if kind == "lineage":
            return [Item(where, "event", lineage_event(obj))]
        if kind == "experience":
            return [document_item(obj, where, policy)]
        item = export_item(obj, where)
        return [item] if item is not None else []
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or "record"
        return [Problem(where, f"{field}: {first['msg']}")]
    except StoreError as exc:
        return [Problem(where, str(exc))]
    except (ValueError, TypeError, KeyError) as exc:
        text = f"missing {exc.args[0]!r}" if isinstance(exc, KeyError) else str(exc)
        return [Problem(where, text)]


def _detect(obj: Any) -> Format | None:
    if is_export_record(obj):
        return "export"
    if is_document(obj):
        return "experience"
    if is_lineage_line(obj):
        return "lineage"
    if is_breakdown(obj):
        return "breakdown"
    return None
