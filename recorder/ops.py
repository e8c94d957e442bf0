"""What the recorder sends: one `Op` per write (start, finish, event), as the arguments of the MCP
tool that performs it (tasks_start, tasks_finish, tasks_log_event), JSON all the way down so an op
can wait in a spool file and be replayed by another process.

An execution is known locally by a `ref` (a UUIDv4 the recorder makes) until the store has given it
a span_id. Arguments that name an execution (span_id, parent_span_id, retry_of) hold
`{"$ref": ref}` while that span_id is unknown; the courier swaps in the span_id when the start has
been delivered. Every op is safe to deliver twice: starts carry an idempotency key, finishes are
no-ops when the same outcome is already stored, and events carry their event_id."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

OpKind = Literal["start", "finish", "event"]
TOOL: dict[OpKind, str] = {"start": "tasks_start", "finish": "tasks_finish", "event": "tasks_log_event"}
REF_FIELDS: dict[OpKind, tuple[str, ...]] = {
    "start": ("parent_span_id", "retry_of"),
    "finish": ("span_id",),
    "event": ("span_id",),
}


class Unresolved(Exception):
    """An argument names an execution whose start has not been delivered (or was refused)."""

    def __init__(self, ref: str) -> None:
        super().__init__(ref)
        self.ref = ref


@dataclass
class Op:
    kind: OpKind
    args: dict[str, Any]
    ref: str | None = None  # start: the local name of the execution it opens
    op_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def tool(self) -> str:
        return TOOL[self.kind]

    def to_line(self) -> str:
        return json.dumps({"kind": self.kind, "args": self.args, "ref": self.ref, "op_id": self.op_id})

    @classmethod
    def from_line(cls, line: str) -> Op:
        raw = json.loads(line)
        if raw.get("kind") not in TOOL or not isinstance(raw.get("args"), dict):
            raise ValueError(f"not a recorder op: {line[:80]!r}")
        return cls(raw["kind"], raw["args"], raw.get("ref"), raw.get("op_id") or str(uuid.uuid4()))

    def refs(self) -> list[str]:
        return [
            value["$ref"] for name in REF_FIELDS[self.kind] if isinstance(value := self.args.get(name), dict)
        ]

    def resolved(self, spans: dict[str, str | None]) -> dict[str, Any]:
        """The arguments with every ref replaced by its span_id; Unresolved when one is not known."""
        args = dict(self.args)
        for name in REF_FIELDS[self.kind]:
            value = args.get(name)
            if isinstance(value, dict):
                span = spans.get(value["$ref"])
                if span is None:
                    raise Unresolved(value["$ref"])
                args[name] = span
        return args

    def bind(self, spans: dict[str, str | None]) -> None:
        """Swap in the span_ids already known (so a spooled op never names a ref that is gone)."""
        for name in REF_FIELDS[self.kind]:
            value = self.args.get(name)
            if isinstance(value, dict) and spans.get(value["$ref"]):
                self.args[name] = spans[value["$ref"]]


def ref_arg(ref: str) -> dict[str, str]:
    return {"$ref": ref}
