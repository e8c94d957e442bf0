"""The seed 002 experience document: every execution goes out as one and comes back in without loss."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from store import InvalidInput, Store
from store.experience import from_document, to_document
from store.models import (
    ErrorInput,
    IOEffects,
    ProvenanceRunner,
    RecordRequest,
    Retrieval,
    StartRequest,
    Usage,
)

T0 = datetime(2025, 11, 4, 18, 29, 12, 123000, tzinfo=UTC)


async def rich_execution(store: Store) -> str:
    first = await store.record(RecordRequest(task_id="daily_reflection", status="failed", started_at=T0,
                                             error=ErrorInput(type="E", message="m")))  # fmt: skip
    result = await store.record(RecordRequest(
        task_id="daily_reflection", task_name="Daily Self-Reflection", task_type="reflection",
        trigger="scheduled",
        scheduled_at=T0, started_at=T0 + timedelta(minutes=1),
        ended_at=T0 + timedelta(minutes=1, seconds=1.042),
        status="partial", retry_of=first.execution.span_id, actor="scheduler",
        retrieval=Retrieval(memory_count=2, query="recent notes", filters={"type": "OBSERVATION"},
                            latency_ms=28, source=["experiences", "beliefs"]),
        parents=["exp_123", "exp_456"], causes=["goal_9"], attributes={"k": [1, 2]},
        io=IOEffects(files_written=["out/report.json"], tool_calls=["tc-1"]),
        usage=Usage(input_tokens=1200, output_tokens=300, cost=0.0123), result="Wrote the reflection.",
        task_config_digest="sha256:abc",
        provenance_runner=ProvenanceRunner(name="scheduler", version="1.0.0", pid=7),
        error=ErrorInput(type="Warning", message="one source was slow"),
    ))  # fmt: skip
    return result.execution.span_id


async def test_the_document_follows_the_seed_002_field_contract(store: Store) -> None:
    span = await rich_execution(store)
    doc = to_document((await store.get(span)).execution)
    s = doc["content"]["structured"]
    assert doc["type"] == "TASK_EXECUTION" and doc["id"].startswith("task_exec_daily_reflection_")
    assert doc["session_id"].startswith("task:daily_reflection:2025-11-04T18:30:12Z:")
    assert (s["schema_version"], s["scheduled_vs_manual"], s["attempt"], s["duration_ms"]) == (
        1,
        "scheduled",
        2,
        1042,
    )
    assert s["started_at_iso"] == "2025-11-04T18:30:12.123000Z" and s["retrieval"]["memory_count"] == 2
    assert doc["parents"] == ["exp_123", "exp_456"] and doc["meta"] == {"scrubbed": True, "backfilled": False}
    assert (
        doc["provenance"]["method"] == "SCHEDULED_TASK" and doc["content"]["text"] == "Wrote the reflection."
    )


async def test_a_document_imports_into_an_empty_store_unchanged(store: Store, tmp_path: Path) -> None:
    span = await rich_execution(store)
    original = (await store.get(span)).execution
    async with await Store.open(str(tmp_path / "copy.db")) as copy:
        imported = await copy.import_execution(from_document(to_document(original)))
        again = await copy.import_execution(from_document(to_document(original)))
        stored = (await copy.get(span)).execution
    assert stored == original and not imported.duplicate and again.duplicate


def test_a_document_of_another_type_is_refused_naming_type() -> None:
    with pytest.raises(InvalidInput) as caught:
        from_document({"type": "OBSERVATION", "content": {"structured": {}}})
    assert caught.value.field == "type"


async def test_an_imported_document_that_breaks_an_invariant_is_refused(store: Store) -> None:
    started = (await store.start(StartRequest(task_id="t"))).execution
    doc = to_document(started)
    doc["content"]["structured"].update(status="failed", error=None)
    with pytest.raises(InvalidInput) as caught:
        await store.import_execution(from_document(doc).model_copy(update={"span_id": "x"}))
    assert caught.value.field == "span_id"
    with pytest.raises(InvalidInput) as caught:
        await Store.import_execution(
            store, from_document(doc).model_copy(update={"span_id": started.span_id[:-1] + "0"})
        )
    assert caught.value.field == "error"
