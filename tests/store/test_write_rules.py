"""Repeated records, idempotency keys and retries: a repeat never hides a different outcome, a key
never answers for another task, and a retry stays within its task."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from store import Conflict, InvalidInput, Store
from store.models import ErrorInput, FinishRequest, RecordRequest, StartRequest

T0 = datetime(2025, 11, 4, 18, 29, 12, tzinfo=UTC)
BOOM = ErrorInput(type="KeyError", message="user 42 missing")


def recorded(status: str = "success", **fields: object) -> RecordRequest:
    error = BOOM if status == "failed" else None
    return RecordRequest(
        task_id="t", started_at=T0, ended_at=T0 + timedelta(seconds=3), status=status, error=error, **fields
    )  # type: ignore[arg-type]


# ---- recording a run again ------------------------------------------------------------------


async def test_recording_the_same_run_with_another_outcome_is_a_conflict_and_the_first_stands(
    store: Store,
) -> None:
    first = await store.record(recorded("success"))
    with pytest.raises(Conflict) as caught:
        await store.record(recorded("failed"))
    assert caught.value.field == "status" and "first outcome stands" in str(caught.value)
    assert (await store.get(first.execution.span_id)).execution.status == "success"
    assert (await store.list_executions()).total == 1


async def test_recording_the_same_run_with_the_same_outcome_is_still_a_duplicate(store: Store) -> None:
    first = await store.record(recorded("failed", idempotency_key="k"))
    again = await store.record(recorded("failed", idempotency_key="k"))
    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.execution == first.execution


async def test_recording_a_run_that_was_started_under_the_same_key_finishes_it(store: Store) -> None:
    started = (await store.start(StartRequest(task_id="t", idempotency_key="k", started_at=T0))).execution
    done = await store.record(recorded("failed", idempotency_key="k"))
    assert done.duplicate is False and done.execution.span_id == started.span_id
    stored = (await store.get(started.span_id)).execution
    assert (stored.status, stored.duration_ms) == ("failed", 3000)
    assert stored.error is not None and stored.error.message == "user 42 missing"
    assert (await store.task_status("t")).state == "failed"
    with pytest.raises(Conflict):
        await store.finish(FinishRequest(span_id=started.span_id, status="success"))


# ---- an idempotency key belongs to one task ----------------------------------------------


async def test_an_idempotency_key_of_another_task_is_a_conflict_not_its_duplicate(store: Store) -> None:
    first = (await store.start(StartRequest(task_id="A", idempotency_key="k"))).execution
    with pytest.raises(Conflict) as caught:
        await store.start(StartRequest(task_id="B", idempotency_key="k"))
    assert caught.value.field == "idempotency_key" and caught.value.hint
    assert first.span_id in str(caught.value) and "task A" in str(caught.value)
    with pytest.raises(Conflict) as recording:
        await store.record(recorded("success", idempotency_key="k").model_copy(update={"task_id": "B"}))
    assert recording.value.field == "idempotency_key"
    listed = await store.list_executions()
    assert [e.span_id for e in listed.executions] == [first.span_id]
    assert (await store.task_status("A")).state == "in_progress"


async def test_the_same_key_for_the_same_task_is_still_a_duplicate(store: Store) -> None:
    first = (await store.start(StartRequest(task_id="A", idempotency_key="k"))).execution
    again = await store.start(StartRequest(task_id="A", idempotency_key="k"))
    assert again.duplicate and again.execution.span_id == first.span_id


# ---- retries stay within their task and follow a known outcome ---------------------------


async def test_retrying_an_execution_of_another_task_is_refused_naming_retry_of(store: Store) -> None:
    other = (await store.start(StartRequest(task_id="A"))).execution
    await store.finish(FinishRequest(span_id=other.span_id, status="failed", error=BOOM))
    with pytest.raises(InvalidInput) as caught:
        await store.start(StartRequest(task_id="B", retry_of=other.span_id))
    assert caught.value.field == "retry_of" and "task A" in str(caught.value) and caught.value.hint
    assert (await store.trace(other.trace_id)).executions == [(await store.get(other.span_id)).execution]
    with pytest.raises(InvalidInput):
        await store.record(recorded("success", retry_of=other.span_id))
    assert (await store.list_executions()).total == 1


async def test_retrying_an_execution_that_is_still_running_is_refused_until_it_finishes(
    store: Store,
) -> None:
    first = (await store.start(StartRequest(task_id="t"))).execution
    with pytest.raises(Conflict) as caught:
        await store.start(StartRequest(task_id="t", retry_of=first.span_id))
    assert caught.value.field == "retry_of" and "still running" in str(caught.value)
    assert caught.value.hint is not None and "finish it first" in caught.value.hint.lower()
    await store.finish(FinishRequest(span_id=first.span_id, status="failed", error=BOOM))
    retry = (await store.start(StartRequest(task_id="t", retry_of=first.span_id))).execution
    assert (retry.attempt, retry.trace_id) == (2, first.trace_id)


async def test_retrying_a_success_is_a_re_run_on_the_same_trace(store: Store) -> None:
    first = (await store.start(StartRequest(task_id="t"))).execution
    await store.finish(FinishRequest(span_id=first.span_id, status="success"))
    rerun = (await store.start(StartRequest(task_id="t", retry_of=first.span_id))).execution
    assert (rerun.attempt, rerun.retry_of, rerun.trace_id) == (2, first.span_id, first.trace_id)
