"""What `tools/list` costs a client, and keeping it low.

A client puts every tool's name, description, input schema and output schema in the model's
context before the first call. pydantic's schemas carry much that no model reads: a `title` on
every property ("Task Id" for `task_id`), `"default": null` on every optional argument, and an
`anyOf [X, null]` where `"type": [X, "null"]` says the same, and descriptions of result fields
that MCP_INTEGRATION.md documents. `compact_tool` removes those (the schemas keep their meaning,
so validation against them is unchanged) and strips the docstring indentation from descriptions.
`listing_tokens` is the figure MCP_INTEGRATION.md quotes, by the same estimate as every answer's
budget (server.budget.estimate_tokens).
"""

from __future__ import annotations

import inspect
import json
from typing import Any

from mcp.types import Tool

from server.budget import estimate_tokens

_NESTED_MAPS = ("properties", "$defs", "patternProperties")
# Arguments whose size the server's settings bound (config: max_text_chars, max_list_items). The
# models cannot carry those bounds (they are settings, not constants), so the listing states them.
TEXT_ARGUMENTS = frozenset({"result", "message", "stack", "query"})
LIST_ARGUMENTS = frozenset(
    {"parents", "causes", "files_written", "artifact_ids", "tool_calls", "script_runs"}
)


def compact_schema(schema: Any, *, descriptions: bool = True) -> Any:
    """`schema` without titles and null defaults (and, unless `descriptions`, without any
    description or default: an output schema only validates), with `anyOf [X, null]` written as
    `type: [X, "null"]`."""
    if isinstance(schema, list):
        return [compact_schema(item, descriptions=descriptions) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" or (key == "default" and (value is None or not descriptions)):
            continue
        if key == "description" and not descriptions:
            continue
        if key in _NESTED_MAPS and isinstance(value, dict):
            out[key] = {name: compact_schema(sub, descriptions=descriptions) for name, sub in value.items()}
        else:
            out[key] = compact_schema(value, descriptions=descriptions)
    return _nullable(out)


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    options = schema.get("anyOf")
    if not (isinstance(options, list) and len(options) == 2 and {"type": "null"} in options):
        return schema
    other = options[0] if options[1] == {"type": "null"} else options[1]
    if not isinstance(other.get("type"), str) or set(other) & set(schema) - {"anyOf"}:
        return schema
    rest = {k: v for k, v in schema.items() if k != "anyOf"}
    return {**rest, **other, "type": [other["type"], "null"]}


def shallow_output(schema: dict[str, Any]) -> dict[str, Any]:
    """An output schema that types every top-level field but declares list items and nested records
    only as objects (their fields are documented in MCP_INTEGRATION.md). SDK clients re-validate
    every result against it with jsonschema: the full item schemas cost them more per 20-row page
    than the whole protocol round trip, and a third of what tools/list costs a model's context."""
    out = {key: value for key, value in schema.items() if key != "$defs"}
    out["properties"] = {name: _shallow(prop) for name, prop in (schema.get("properties") or {}).items()}
    return out


def _shallow(prop: Any) -> Any:
    if not isinstance(prop, dict) or '"$ref"' not in json.dumps(prop):
        return prop
    kind = prop.get("type")
    if kind == "array" or (isinstance(kind, list) and "array" in kind):
        return {"type": kind, "items": {"type": "object"}}
    options = prop.get("anyOf") or []
    return {"type": ["object", "null"]} if {"type": "null"} in options else {"type": "object"}


def with_size_bounds(schema: Any, max_text_chars: int, max_list_items: int) -> Any:
    """`schema` with maxLength / maxItems on the arguments the settings bound, wherever they nest."""
    if isinstance(schema, list):
        return [with_size_bounds(item, max_text_chars, max_list_items) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: with_size_bounds(value, max_text_chars, max_list_items) for key, value in schema.items()}
    for name, prop in (out.get("properties") or {}).items():
        types = prop.get("type") if isinstance(prop, dict) else None
        kinds = set(types) if isinstance(types, list) else {types}
        if name in TEXT_ARGUMENTS and "string" in kinds:
            prop.setdefault("maxLength", max_text_chars)
        elif name in LIST_ARGUMENTS and "array" in kinds:
            prop.setdefault("maxItems", max_list_items)
    return out


def compact_tool(tool: Tool, *, max_text_chars: int | None = None, max_list_items: int | None = None) -> Tool:
    """The tool as listed: compact schemas, and the settings' size bounds when they are given."""
    input_schema = compact_schema(tool.input_schema)
    if max_text_chars is not None and max_list_items is not None:
        input_schema = with_size_bounds(input_schema, max_text_chars, max_list_items)
    return tool.model_copy(
        update={
            "description": inspect.cleandoc(tool.description) if tool.description else tool.description,
            "input_schema": input_schema,
            # The result fields are described in MCP_INTEGRATION.md; a model reads the answer itself,
            # and clients use the output schema to validate, where descriptions change nothing.
            "output_schema": shallow_output(compact_schema(tool.output_schema, descriptions=False))
            if tool.output_schema
            else tool.output_schema,
        }
    )


def listing_tokens(tools: list[Tool]) -> int:
    """Estimated tokens of a `tools/list` result holding `tools`, as a client receives it."""
    return estimate_tokens(
        {"tools": [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]}
    )
