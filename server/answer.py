"""The base of every tool answer: a frozen pydantic model (the output schema and structured
content) with a short `render()` (the text block). Kept apart from results.py so that the
answer-sizing machinery (server.budget) and the answers themselves can both build on it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


def _compact_nullables(schema: dict[str, Any]) -> None:
    """Write `X | None` fields as `"type": [X, "null"]` instead of pydantic's `anyOf`.

    Same meaning, but SDK clients re-validate every result against the output schema with `jsonschema`,
    and a list answer has hundreds of such fields: the `anyOf` form costs them about a third more."""
    for prop in schema.get("properties", {}).values():
        options = prop.get("anyOf")
        if not (isinstance(options, list) and len(options) == 2 and {"type": "null"} in options):
            continue
        other = options[0] if options[1] == {"type": "null"} else options[1]
        if isinstance(other.get("type"), str) and set(other) <= {"type", "format"}:
            del prop["anyOf"]
            prop.update(other, type=[other["type"], "null"])


class Part(BaseModel):
    """A piece of an answer (no rendering of its own)."""

    model_config = ConfigDict(frozen=True, json_schema_extra=_compact_nullables)


class ToolResult(Part):
    """Base of every answer: structured fields plus a short text rendering."""

    def render(self) -> str:
        raise NotImplementedError
