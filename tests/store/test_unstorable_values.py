"""Text with NUL and usage past 10^12: refused on every write and import, alike on both engines and
naming the field; and records stored before those rules (a NUL in a SQLite file, a run of 2 * 10^12
tokens) still read, still let their task be written to, and count in statistics as the cap."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from every_write import raw

from store import InvalidInput, Store
from store.models import (
    USAGE_MAX,
    ErrorInput,
    EventRequest,
    FinishRequest,
    IOEffects,
    RecordRequest,
    Retrieval,
    StartRequest,
    Usage,
)

T0 = datetime(2025, 11, 1, tzinfo=UTC)
NUL = "a\x00b"

REFUSED_WRITES = [
    ("task_name", lambda: StartRequest(task_id="t", task_name=NUL)),
    ("idempotency_key", lambda: StartRequest(task_id="t", idempotency_key=NUL)),
    ("retrieval.query", lambda: StartRequest(task_id="t", retrieval=Retrieval(query=NUL))),
    ("attributes.note", lambda: StartRequest(task_id="t", attributes={"note": NUL})),
    ("result", lambda: RecordRequest(task_id="t", status="success", started_at=T0, result=NUL)),
    (
        "error.stack",
        lambda: RecordRequest(
            task_id="t", status="failed", started_at=T0, error=ErrorInput(type="E", message="m", stack=NUL)
        ),
    ),
    (
        "io.files_written[0]",
        lambda: RecordRequest(
            task_id="t", status="success", started_at=T0, io=IOEffects(files_written=[NUL])
        ),
    ),
    (
        "data.error.message",
        lambda: EventRequest(
            event_type="task_failed", task_id="t", data={"error": {"type": "E", "message": NUL}}
        ),
    ),
]


async def write(store: Store, request: object) -> object:
    if isinstance(request, StartRequest) and not isinstance(request, RecordRequest):
        return await store.start(request)
    if isinstance(request, RecordRequest):
        return await store.record(request)
    assert isinstance(request, EventRequest)
    return await store.log_event(request)


@pytest.mark.parametrize(("field", "request_of"), REFUSED_WRITES, ids=[f for f, _ in REFUSED_WRITES])
async def test_a_write_with_nul_in_any_text_is_refused_naming_the_field(
    store: Store, field: str, request_of: object
) -> None:
    with pytest.raises(InvalidInput) as refused:
        await write(store, request_of())  # type: ignore[operator]
    assert refused.value.field == field and "NUL" in str(refused.value)
    assert (await store.list_executions()).total == 0


async def test_an_import_with_nul_is_refused_naming_the_field(store: Store) -> None:
    stored = (await store.record(RecordRequest(task_id="t", status="success", started_at=T0))).execution
    twin = stored.model_copy(update={"span_id": str(uuid.uuid4()), "execution_id": "x-1", "task_name": NUL})
    with pytest.raises(InvalidInput, match="NUL") as refused:
        await store.import_execution(twin)
    assert refused.value.field == "task_name" and (await store.list_executions()).total == 1


@pytest.mark.parametrize("name", ["input_tokens", "output_tokens", "cost"])
async def test_usage_past_a_trillion_is_refused(store: Store, name: str) -> None:
    usage = Usage(**{name: USAGE_MAX + 1})
    with pytest.raises(InvalidInput, match="at most 1,000,000,000,000") as refused:
        await store.record(RecordRequest(task_id="t", status="success", started_at=T0, usage=usage))
    assert refused.value.field == f"usage.{name}"
    started = (await store.start(StartRequest(task_id="t"))).execution
    with pytest.raises(InvalidInput):
        await store.finish(FinishRequest(span_id=started.span_id, status="success", usage=usage))
    assert (await store.get(started.span_id)).execution.status == "running"


async def test_runs_stored_before_the_usage_cap_still_read_and_count_as_the_cap(
    store: Store, database_url: str
) -> None:
    for minute in range(2):
        await store.record(
            RecordRequest(task_id="big", status="success", started_at=T0 + timedelta(minutes=minute))
        )
    raw(
        database_url, "UPDATE executions SET input_tokens = ?, cost = ? WHERE task_id = 'big'", (2**62, 1e300)
    )
    listed = await store.list_executions()
    assert {e.usage.input_tokens for e in listed.executions} == {2**62}
    await store.record(RecordRequest(task_id="big", status="success", started_at=T0 + timedelta(minutes=5)))
    everything = {"since": T0 - timedelta(days=1), "until": datetime.now(UTC) + timedelta(days=1)}
    for stats in (await store.stats(task_id="big"), await store.stats(task_id="big", **everything)):
        [group] = stats.groups
        assert (group.runs, group.input_tokens, group.cost) == (3, 2 * USAGE_MAX, 2 * USAGE_MAX)


async def test_a_nul_stored_before_the_rule_still_reads(db_path: Path) -> None:
    async with await Store.open(str(db_path)) as store:
        span = (
            await store.record(RecordRequest(task_id="t", status="success", started_at=T0))
        ).execution.span_id
    raw(str(db_path), "UPDATE executions SET result = 'a' || char(0) || 'b', task_name = 'n' || char(0)")
    async with await Store.open(str(db_path)) as store:
        detail = await store.get(span)
        assert detail.execution.result == NUL and (await store.list_executions()).total == 1
        await store.record(RecordRequest(task_id="t", status="success", started_at=T0 + timedelta(minutes=1)))
