"""Starting, finishing and recording executions: idempotency, retries and seed 002's invariants."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from store import Conflict, InvalidInput, NotFound, Policy, Store
from store.ids import derived_idempotency_key, is_uuid4
from store.models import ErrorInput, FinishRequest, RecordRequest, Retrieval, StartRequest
from store.store import check_encodable

T0 = datetime(2025, 11, 4, 18, 29, 12, tzinfo=UTC)


def failing(span_id: str, message: str = "user 42 missing") -> FinishRequest:
    return FinishRequest(span_id=span_id, status="failed", error=ErrorInput(type="KeyError", message=message))


async def test_a_started_execution_gets_uuid4_ids_attempt_one_and_running_status(store: Store) -> None:
    started = await store.start(StartRequest(task_id="daily_reflection", task_name="Daily Self-Reflection"))
    e = started.execution
    assert (is_uuid4(e.trace_id), is_uuid4(e.span_id), e.attempt, e.retry_of, e.status) == (
        True,
        True,
        1,
        None,
        "running",
    )
    assert e.execution_id.startswith("task_exec_daily_reflection_")
    assert e.session_id.startswith("task:daily_reflection:") and started.duplicate is False


async def test_a_repeated_idempotency_key_returns_the_first_execution_marked_duplicate(store: Store) -> None:
    first = await store.start(StartRequest(task_id="t", idempotency_key="run-7"))
    again = await store.start(StartRequest(task_id="t", idempotency_key="run-7", task_name="other"))
    assert again.duplicate and again.execution.span_id == first.execution.span_id
    assert (await store.list_executions()).total == 1


async def test_scheduled_at_without_a_key_derives_sha256_of_task_scheduled_time_and_attempt(
    store: Store,
) -> None:
    started = await store.start(StartRequest(task_id="t", trigger="scheduled", scheduled_at=T0))
    assert started.execution.idempotency_key == derived_idempotency_key("t", T0, 1)
    again = await store.start(StartRequest(task_id="t", trigger="scheduled", scheduled_at=T0))
    assert again.duplicate and again.execution.span_id == started.execution.span_id


async def test_a_retry_reuses_the_trace_and_counts_attempts(store: Store) -> None:
    first = (await store.start(StartRequest(task_id="t"))).execution
    await store.finish(failing(first.span_id))
    second = (await store.start(StartRequest(task_id="t", retry_of=first.span_id))).execution
    await store.finish(failing(second.span_id))
    third = (await store.start(StartRequest(task_id="t", retry_of=second.span_id))).execution
    assert [first.attempt, second.attempt, third.attempt] == [1, 2, 3]
    assert {second.trace_id, third.trace_id} == {first.trace_id}
    assert (second.retry_of, third.retry_of) == (first.span_id, second.span_id)


async def test_retrying_an_unknown_span_is_an_error_naming_retry_of(store: Store) -> None:
    with pytest.raises(InvalidInput) as caught:
        await store.start(StartRequest(task_id="t", retry_of=str(uuid.uuid4())))
    assert caught.value.field == "retry_of"


async def test_a_retry_with_a_different_trace_id_is_refused(store: Store) -> None:
    first = (await store.start(StartRequest(task_id="t"))).execution
    with pytest.raises(InvalidInput) as caught:
        await store.start(StartRequest(task_id="t", retry_of=first.span_id, trace_id=str(uuid.uuid4())))
    assert caught.value.field == "trace_id"


async def test_the_same_attempt_cannot_be_retried_twice(store: Store) -> None:
    first = (await store.start(StartRequest(task_id="t"))).execution
    await store.finish(failing(first.span_id))
    await store.start(StartRequest(task_id="t", retry_of=first.span_id))
    with pytest.raises(Conflict) as caught:
        await store.start(StartRequest(task_id="t", retry_of=first.span_id))
    assert caught.value.field == "retry_of"


@pytest.mark.parametrize("field, value", [("trace_id", "not-a-uuid"), ("span_id", str(uuid.uuid1()))])
async def test_caller_ids_must_be_uuid4(store: Store, field: str, value: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        await store.start(StartRequest(task_id="t", **{field: value}))
    assert caught.value.field == field and "UUIDv4" in str(caught.value)


async def test_a_child_execution_inherits_its_parents_trace(store: Store) -> None:
    parent = (await store.start(StartRequest(task_id="t"))).execution
    child = (
        await store.start(StartRequest(task_id="t", parent_span_id=parent.span_id, actor="w1"))
    ).execution
    assert child.trace_id == parent.trace_id and child.parent_span_id == parent.span_id


async def test_finishing_records_duration_and_a_stack_hash(store: Store) -> None:
    started = (await store.start(StartRequest(task_id="t", started_at=T0))).execution
    done = await store.finish(
        FinishRequest(
            span_id=started.span_id, status="failed", ended_at=T0 + timedelta(milliseconds=1042),
            error=ErrorInput(type="KeyError", message="user 42 missing",
                             stack="Traceback (most recent call last):\n"),
        )
    )  # fmt: skip
    assert done.execution.duration_ms == 1042 and done.execution.error is not None
    assert len(done.execution.error.stack_hash) == 16


async def test_a_failed_finish_without_an_error_is_refused_and_nothing_changes(store: Store) -> None:
    started = (await store.start(StartRequest(task_id="t"))).execution
    with pytest.raises(InvalidInput) as caught:
        await store.finish(FinishRequest(span_id=started.span_id, status="failed"))
    assert caught.value.field == "error"
    assert (await store.get(started.span_id)).execution.status == "running"


async def test_an_end_before_the_start_is_refused(store: Store) -> None:
    started = (await store.start(StartRequest(task_id="t", started_at=T0))).execution
    with pytest.raises(InvalidInput) as caught:
        await store.finish(
            FinishRequest(span_id=started.span_id, status="success", ended_at=T0 - timedelta(seconds=1))
        )
    assert caught.value.field == "ended_at"


async def test_finishing_twice_with_the_same_outcome_is_a_no_op(store: Store) -> None:
    started = (await store.start(StartRequest(task_id="t"))).execution
    first = await store.finish(FinishRequest(span_id=started.span_id, status="success", result="done"))
    again = await store.finish(FinishRequest(span_id=started.span_id, status="success", result="other"))
    assert again.already_finished and again.execution.result == "done"
    assert again.execution.ended_at == first.execution.ended_at


async def test_finishing_twice_with_a_different_outcome_is_a_conflict_and_the_first_stands(
    store: Store,
) -> None:
    started = (await store.start(StartRequest(task_id="t"))).execution
    await store.finish(FinishRequest(span_id=started.span_id, status="success"))
    with pytest.raises(Conflict) as caught:
        await store.finish(failing(started.span_id))
    assert "already finished as success" in str(caught.value)
    assert (await store.get(started.span_id)).execution.status == "success"


async def test_finishing_an_unknown_span_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.finish(FinishRequest(span_id=str(uuid.uuid4()), status="success"))


async def test_parents_must_match_the_retrieval_memory_count(store: Store) -> None:
    with pytest.raises(InvalidInput) as caught:
        await store.start(StartRequest(task_id="t", retrieval=Retrieval(memory_count=3), parents=["a", "b"]))
    assert caught.value.field == "parents"
    ok = await store.start(StartRequest(task_id="t", retrieval=Retrieval(query="q"), parents=["a", "b"]))
    assert ok.execution.retrieval.memory_count == 2


async def test_recording_a_whole_execution_is_idempotent(store: Store) -> None:
    req = RecordRequest(
        task_id="nightly", status="failed", started_at=T0, ended_at=T0 + timedelta(seconds=3),
        error=ErrorInput(type="TimeoutError", message="no answer after 30s"),
    )  # fmt: skip
    first = await store.record(req)
    again = await store.record(req)
    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.execution.span_id == first.execution.span_id and first.execution.duration_ms == 3000
    assert (await store.list_executions()).total == 1


async def test_free_text_is_scrubbed_but_identifiers_are_not(store: Store) -> None:
    trace = str(uuid.uuid4())
    started = (
        await store.start(StartRequest(task_id="t", trace_id=trace, attributes={"who": "ann@example.com"}))
    ).execution
    done = await store.finish(
        FinishRequest(span_id=started.span_id, status="failed", result="sent to 10.0.0.7",
                      error=ErrorInput(type="AuthError",
                                       message="password=hunter2 rejected for bob@example.com"))
    )  # fmt: skip
    e = done.execution
    assert e.trace_id == trace and e.scrubbed
    assert "[EMAIL]" in e.attributes["who"] and "10.0.0.7" not in (e.result or "")
    assert (
        e.error is not None and "hunter2" not in e.error.message and "bob@example.com" not in e.error.message
    )


async def test_scrubbing_can_be_turned_off(tmp_path: Path) -> None:
    async with await Store.open(str(tmp_path / "raw.db"), policy=Policy(scrub_pii=False)) as raw:
        started = (await raw.start(StartRequest(task_id="t"))).execution
        done = await raw.finish(
            FinishRequest(span_id=started.span_id, status="success", result="ann@example.com")
        )
    assert done.execution.result == "ann@example.com" and not done.execution.scrubbed


async def test_text_over_the_configured_limit_is_refused_naming_the_field(tmp_path: Path) -> None:
    async with await Store.open(str(tmp_path / "small.db"), policy=Policy(max_text_chars=300)) as small:
        started = (await small.start(StartRequest(task_id="t"))).execution
        with pytest.raises(InvalidInput) as caught:
            await small.finish(FinishRequest(span_id=started.span_id, status="success", result="x" * 301))
        assert caught.value.field == "result" and "max_text_chars" in str(caught.value)
        assert (await small.get(started.span_id)).execution.status == "running"


async def test_lone_surrogates_are_refused_naming_the_field(store: Store) -> None:
    with pytest.raises(InvalidInput) as caught:
        await store.start(StartRequest(task_id="t", attributes={"note": "bad \ud800 text"}))
    assert caught.value.field == "attributes.note"


@pytest.mark.parametrize(
    ("attributes", "field"),
    [
        ({"deep": [1, {"x": ["ok", "bad \udfff"]}]}, "attributes.deep[1].x[1]"),
        ({"bad \ud83d key": "value"}, "attributes"),
    ],
)
def test_lone_surrogates_anywhere_are_found_and_named(attributes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_encodable(StartRequest(task_id="t", attributes=attributes))
    assert caught.value.field == field


def test_well_formed_text_beyond_the_basic_plane_is_accepted() -> None:
    check_encodable(StartRequest(task_id="t", attributes={"emoji \U0001f600": ["\U0001f600", {"k": "é"}]}))


async def test_sql_looking_text_is_stored_verbatim(store: Store) -> None:
    sneaky = "x'); DROP TABLE executions; --"
    started = (await store.start(StartRequest(task_id=sneaky))).execution
    page = await store.list_executions()
    assert page.executions[0].task_id == sneaky and started.task_id == sneaky


async def test_opening_an_unusable_path_says_which_database_and_how_to_fix_it(tmp_path: Path) -> None:
    from store import StoreUnavailable

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreUnavailable, match="TASK_HISTORY_DATABASE_URL") as caught:
        await Store.open(str(blocker / "sub" / "h.db"))
    assert str(blocker) in str(caught.value)


async def test_ping_answers_on_an_open_store(store: Store) -> None:
    await store.ping()
