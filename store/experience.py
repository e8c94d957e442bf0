"""The seed 002 experience document: how an execution leaves the store (tasks_get, export)
and how a document comes back in (import) without losing a field. Pure."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError

from store.errors import InvalidInput
from store.fingerprint import stack_hash
from store.models import ErrorInfo, Execution, IOEffects, ProvenanceRunner, Retrieval, Usage
from store.timeutil import from_us, iso_z, to_us

SCHEMA_VERSION = 1
DOCUMENT_TYPE = "TASK_EXECUTION"


def to_document(execution: Execution) -> dict[str, Any]:
    """The experience document for one execution, in seed 002's concrete field contract."""
    e = execution
    return {
        "id": e.execution_id,
        "type": DOCUMENT_TYPE,
        "content": {"text": e.result or _summary(e), "structured": _structured(e)},
        "provenance": {
            "actor": "AGENT",
            "method": "SCHEDULED_TASK" if e.trigger == "scheduled" else "MANUAL_TASK",
            "sources": [],
        },
        "parents": list(e.parents),
        "causes": list(e.causes),
        "session_id": e.session_id,
        "created_at": iso_z(e.created_at),
        "ts": to_us(e.started_at) / 1_000_000,
        "meta": {"scrubbed": e.scrubbed, "backfilled": e.backfilled},
    }


def _structured(e: Execution) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "task_id": e.task_id,
        "task_slug": e.task_slug,
        "task_name": e.task_name,
        "task_type": e.task_type,
        "scheduled_vs_manual": e.trigger,
        "actor": e.actor,
        "worker_id": e.worker_id,
        "status": e.status,
        "started_at_iso": iso_z(e.started_at),
        "ended_at_iso": iso_z(e.ended_at) if e.ended_at else None,
        "started_at_ts": to_us(e.started_at) / 1_000_000,
        "ended_at_ts": to_us(e.ended_at) / 1_000_000 if e.ended_at else None,
        "duration_ms": e.duration_ms,
        "scheduled_at_iso": iso_z(e.scheduled_at) if e.scheduled_at else None,
        "trace_id": e.trace_id,
        "span_id": e.span_id,
        "parent_span_id": e.parent_span_id,
        "attempt": e.attempt,
        "retry_of": e.retry_of,
        "idempotency_key": e.idempotency_key,
        "task_config_digest": e.task_config_digest,
        "retrieval": e.retrieval.model_dump(),
        "io": e.io.model_dump(),
        "usage": e.usage.model_dump(),
        "embedding_skipped": True,
        "provenance_runner": e.provenance_runner.model_dump() if e.provenance_runner else None,
        "grants": {"scopes": [], "impersonation": False},
        "error": e.error.model_dump() if e.error else None,
        "result": e.result,
        "attributes": e.attributes,
        "backfilled": e.backfilled,
    }


def _summary(e: Execution) -> str:
    text = f"{e.task_name or e.task_id} ({e.task_id}) attempt {e.attempt}: {e.status}"
    if e.error is not None:
        text += f" - {e.error.type}: {e.error.message}"
    return text


def from_document(doc: dict[str, Any], *, backfilled: bool | None = None) -> Execution:
    """An execution from a seed 002 document; raises InvalidInput naming the bad field."""
    try:
        return _from_document(doc, backfilled)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "document"
        raise InvalidInput(f"content.structured.{where}", first["msg"]) from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput("document", f"is not a seed 002 experience document ({exc})") from exc


def _from_document(doc: dict[str, Any], backfilled: bool | None) -> Execution:
    if doc.get("type") != DOCUMENT_TYPE:
        raise InvalidInput("type", f"is {doc.get('type')!r}; expected {DOCUMENT_TYPE!r}")
    s = doc["content"]["structured"]
    meta = doc.get("meta") or {}
    text = doc["content"].get("text")
    return Execution(
        execution_id=doc["id"],
        task_id=s["task_id"],
        task_slug=s.get("task_slug") or s["task_id"],
        task_name=s.get("task_name"),
        task_type=s.get("task_type"),
        trigger=s.get("scheduled_vs_manual") or "manual",
        actor=s.get("actor"),
        worker_id=s.get("worker_id"),
        trace_id=s["trace_id"],
        span_id=s["span_id"],
        parent_span_id=s.get("parent_span_id"),
        attempt=s.get("attempt") or 1,
        retry_of=s.get("retry_of"),
        idempotency_key=s.get("idempotency_key"),
        status=s["status"],
        started_at=_instant(s, "started_at"),
        ended_at=_instant(s, "ended_at"),
        duration_ms=s.get("duration_ms"),
        scheduled_at=_parse(s.get("scheduled_at_iso")),
        error=ErrorInfo(**_error_with_hash(s["error"])) if s.get("error") else None,
        retrieval=Retrieval(**(s.get("retrieval") or {"memory_count": len(doc.get("parents") or [])})),
        parents=list(doc.get("parents") or []),
        causes=list(doc.get("causes") or []),
        io=IOEffects(**(s.get("io") or {})),
        usage=Usage(**(s.get("usage") or {})),
        result=s.get("result", text),
        task_config_digest=s.get("task_config_digest"),
        provenance_runner=ProvenanceRunner(**s["provenance_runner"]) if s.get("provenance_runner") else None,
        attributes=dict(s.get("attributes") or {}),
        backfilled=bool(meta.get("backfilled") or s.get("backfilled")) if backfilled is None else backfilled,
        scrubbed=bool(meta.get("scrubbed")),
        session_id=doc.get("session_id")
        or f"task:{s['task_id']}:{s.get('started_at_iso')}:{s['span_id'][:4]}",
        created_at=_parse(doc.get("created_at")) or _instant(s, "started_at"),
    )


def _instant(structured: dict[str, Any], name: str) -> datetime | None:
    """Prefer the exact float timestamp, fall back to the ISO string."""
    ts = structured.get(f"{name}_ts")
    if isinstance(ts, (int, float)):
        return from_us(round(ts * 1_000_000))
    return _parse(structured.get(f"{name}_iso"))


def _parse(text: Any) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no timezone")
    return moment


def _error_with_hash(error: dict[str, Any]) -> dict[str, Any]:
    if error.get("stack_hash"):
        return error
    return {**error, "stack_hash": stack_hash(error["type"], error.get("stack"), error.get("message"))}
