"""Rows and models: an execution written as a row reads back as the same execution, every field,
from a real SQLite file (rows.execution_from is on every read path, so a slip here would
misreport every list, trace and failure)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from store import Store
from store.models import (
    ErrorInput,
    IOEffects,
    ProvenanceRunner,
    RecordRequest,
    Retrieval,
    StartRequest,
    Usage,
)
from store.sqlite import rows

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def stored_row(path: Path, span_id: str) -> tuple[object, ...]:
    with sqlite3.connect(path) as conn:
        found = conn.execute(
            f"SELECT {rows.EXECUTION_SELECT} FROM executions WHERE span_id = ?", (span_id,)
        ).fetchone()
    assert found is not None
    return tuple(found)


async def test_a_full_execution_reads_back_field_for_field(tmp_path: Path) -> None:
    path = tmp_path / "rows.db"
    store = await Store.open(str(path))
    try:
        done = await store.record(
            RecordRequest(
                task_id="rows-1",
                task_name="Rows",
                task_type="etl",
                actor="worker-7",
                status="failed",
                started_at=T0,
                ended_at=T0 + timedelta(seconds=3, microseconds=7),
                scheduled_at=T0 - timedelta(minutes=1),
                error=ErrorInput(type="KeyError", message="user 42 missing", stack="Traceback ...\nKeyError"),
                result="partial output",
                usage=Usage(input_tokens=1200, output_tokens=80, cost=0.0125),
                retrieval=Retrieval(memory_count=1, query="q", source=["experiences"], latency_ms=4),
                parents=["mem-1"],
                causes=["cause-1"],
                attributes={"region": "eu", "n": 3, "nested": {"ok": True}},
                io=IOEffects(files_written=["out/report.csv"], tool_calls=["search"]),
                task_config_digest="sha256:abc",
                provenance_runner=ProvenanceRunner(name="runner", version="1.2", pid=4242),
            )
        )
        plain = await store.start(StartRequest(task_id="rows-2"))
        for execution in (done.execution, plain.execution):
            stored = (await store.get(execution.span_id)).execution
            read = rows.execution_from(stored_row(path, execution.span_id))
            assert read == stored
            assert read.model_dump() == stored.model_dump()
        full = rows.execution_from(stored_row(path, done.execution.span_id))
        assert full.error is not None and full.error.stack_hash  # the columns land in the nested model
        assert (full.error.type, full.error.message) == ("KeyError", "user 42 missing")
        assert full.usage == Usage(input_tokens=1200, output_tokens=80, cost=0.0125)
        assert full.started_at == T0 and full.ended_at == T0 + timedelta(seconds=3, microseconds=7)
        assert full.scheduled_at == T0 - timedelta(minutes=1)
        assert full.retrieval.memory_count == 1 and full.parents == ["mem-1"]
        assert full.attributes == {"region": "eu", "n": 3, "nested": {"ok": True}}
        assert full.io.files_written == ["out/report.csv"] and full.io.tool_calls == ["search"]
        assert full.provenance_runner == ProvenanceRunner(name="runner", version="1.2", pid=4242)
    finally:
        await store.close()


async def test_an_unknown_detail_key_is_ignored_and_a_short_row_refused(tmp_path: Path) -> None:
    path = tmp_path / "rows.db"
    store = await Store.open(str(path))
    try:
        started = await store.start(StartRequest(task_id="rows-3", attributes={"a": 1}))
    finally:
        await store.close()
    row = list(stored_row(path, started.execution.span_id))
    at = rows.EXECUTION_COLUMNS.index("detail")
    detail = json.loads(str(row[at]))
    row[at] = json.dumps({**detail, "left_by_some_other_writer": 1})
    read = rows.execution_from(row)
    assert read.attributes == {"a": 1} and read.span_id == started.execution.span_id
    with pytest.raises(ValueError, match="columns"):
        rows.execution_from([0, *row])  # a query's leading column (seq) not stripped
