"""Seed 002 experience documents from elsewhere (one JSON document per file, a JSON list, or one
per JSONL line), and the lines of this store's own export format. Pure.

A foreign document is marked backfilled (it was not recorded live by this store) and, when it says
it was not scrubbed and the store scrubs, its free text goes through the same PII scrubber as a
live write. An export line is taken exactly as written: it came from a store like this one."""

from __future__ import annotations

from typing import Any

from store import rules
from store.experience import DOCUMENT_TYPE, from_document
from store.export import is_export_record, parse_record
from store.importers.items import Item
from store.models import ErrorInfo, Execution, LifecycleEvent
from store.records import StoredTask


def is_document(obj: object) -> bool:
    return isinstance(obj, dict) and obj.get("type") == DOCUMENT_TYPE


def document_item(doc: dict[str, Any], where: str, policy: rules.Policy) -> Item:
    """The execution in a foreign document; InvalidInput naming the bad field."""
    execution = from_document(doc, backfilled=True)
    # Scrubbed again even when the document says it was: another system's scrubber may have missed
    # what ours catches, and scrubbing twice changes nothing.
    if policy.scrub_pii:
        execution = _scrubbed(execution, policy)
    rules.check_invariants(execution)
    return Item(where, "execution", execution)


def _scrubbed(e: Execution, policy: rules.Policy) -> Execution:
    error = e.error
    if error is not None:
        error = ErrorInfo(
            type=error.type, message=rules.scrub(policy, error.message) or "",
            stack=rules.scrub(policy, error.stack), stack_hash=error.stack_hash,
        )  # fmt: skip
    retrieval = e.retrieval.model_copy(
        update={
            "query": rules.scrub(policy, e.retrieval.query),
            "filters": rules.scrub_data(policy, e.retrieval.filters),
        }
    )
    return e.model_copy(
        update={
            "result": rules.scrub(policy, e.result), "error": error, "retrieval": retrieval,
            "attributes": rules.scrub_data(policy, e.attributes), "scrubbed": True,
        }
    )  # fmt: skip


def export_item(obj: dict[str, Any], where: str) -> Item | None:
    """The record an export line carries (None for its header and footer)."""
    found = parse_record(obj)
    if found is None:
        return None
    if isinstance(found, Execution):
        rules.check_invariants(found)
        return Item(where, "execution", found)
    if isinstance(found, StoredTask):
        return Item(where, "task", found)
    assert isinstance(found, LifecycleEvent)
    return Item(where, "raw_event", found)


__all__ = ["document_item", "export_item", "is_document", "is_export_record"]
