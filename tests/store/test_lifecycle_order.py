"""Events that arrive out of order, twice, or from the future: the task state keeps following what
the events did to executions, the first outcome stands, and nothing well-formed is lost."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from store import Conflict, InvalidInput, Store
from store.models import EventRequest, EventResult, FinishRequest, RecordRequest, StartRequest
from store.timeutil import now_utc

T0 = datetime(2025, 11, 5, 10, 0, tzinfo=UTC)


async def log(store: Store, event_type: str, second: int, task_id: str = "t", **data: Any) -> EventResult:
    return await store.log_event(
        EventRequest(event_type=event_type, task_id=task_id, data=data, ts=T0 + timedelta(seconds=second))
    )


def error(message: str = "scan timed out") -> dict[str, str]:
    return {"type": "TimeoutError", "message": message}


# ---- late events that open or close an execution move the state -------------------------


async def test_a_late_completion_closes_the_execution_and_the_task_follows(store: Store) -> None:
    started = await log(store, "task_started", 5)
    done = await log(store, "task_completed", 3)
    assert done.event.anomaly is not None and "out of order" in done.event.anomaly
    detail = await store.get(started.opened_span_id or "")
    assert (detail.execution.status, done.closed_span_id) == ("success", started.opened_span_id)
    status = await store.task_status("t")
    assert (status.state, status.current_span_id, status.attempts) == ("completed", started.opened_span_id, 1)
    assert status.completed_at == detail.execution.ended_at


async def test_a_late_failure_fails_the_task_with_its_error(store: Store) -> None:
    started = await log(store, "task_started", 5)
    await log(store, "task_failed", 4, error=error())
    detail = await store.get(started.opened_span_id or "")
    assert detail.execution.error is not None and detail.execution.error.type == "TimeoutError"
    assert (await store.task_status("t")).state == "failed"


async def test_a_late_start_that_opens_a_running_execution_puts_the_task_in_progress(store: Store) -> None:
    await log(store, "task_created", 10)
    started = await log(store, "task_started", 5)
    assert started.opened_span_id is not None
    status = await store.task_status("t")
    assert (status.state, status.attempts, status.current_span_id) == (
        "in_progress", 1, started.opened_span_id)  # fmt: skip
    assert status.started_at == T0 + timedelta(seconds=5)


async def test_a_late_start_closed_by_its_earlier_arrived_outcome_counts_the_attempt_and_keeps_the_outcome(
    store: Store,
) -> None:
    await log(store, "task_failed", 9, error=error())
    late_start = await log(store, "task_started", 2)
    detail = await store.get(late_start.opened_span_id or "")
    assert detail.execution.status == "failed" and late_start.closed_span_id == late_start.opened_span_id
    status = await store.task_status("t")
    assert (status.state, status.attempts) == ("failed", 1)


async def test_a_late_pure_state_event_stays_in_the_timeline_without_moving_the_state_back(
    store: Store,
) -> None:
    await log(store, "task_started", 5)
    blocked = await log(store, "task_blocked", 3, reason="waiting on T1")
    assert blocked.event.anomaly is not None and "out of order" in blocked.event.anomaly
    assert blocked.task.state == "in_progress"
    assert len((await store.timeline("t")).events) == 2


# ---- timestamps from the future ------------------------------------------------------------


async def test_an_event_more_than_a_day_ahead_of_the_server_clock_is_refused_naming_ts(store: Store) -> None:
    with pytest.raises(InvalidInput) as caught:
        await store.log_event(
            EventRequest(event_type="task_created", task_id="t", ts=datetime(2190, 1, 1, tzinfo=UTC))
        )
    assert caught.value.field == "ts" and caught.value.hint
    started = await store.log_event(EventRequest(event_type="task_started", task_id="t", ts=now_utc()))
    assert started.event.anomaly is None and started.task.state == "in_progress"


async def test_an_event_a_few_hours_ahead_is_accepted_as_clock_skew(store: Store) -> None:
    ahead = await store.log_event(
        EventRequest(event_type="task_created", task_id="t", ts=now_utc() + timedelta(hours=3))
    )
    assert ahead.duplicate is False


@pytest.mark.parametrize("field", ["started_at", "scheduled_at"])
async def test_a_start_time_more_than_a_day_ahead_is_refused_naming_the_field(
    store: Store, field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        await store.start(StartRequest(task_id="t", **{field: now_utc() + timedelta(days=2)}))
    assert caught.value.field == field
    assert (await store.list_executions()).total == 0


async def test_an_end_time_more_than_a_day_ahead_is_refused_and_the_execution_stays_running(
    store: Store,
) -> None:
    started = (await store.start(StartRequest(task_id="t"))).execution
    with pytest.raises(InvalidInput) as caught:
        await store.finish(
            FinishRequest(span_id=started.span_id, status="success", ended_at=now_utc() + timedelta(days=2))
        )
    assert caught.value.field == "ended_at"
    assert (await store.get(started.span_id)).execution.status == "running"
    with pytest.raises(InvalidInput) as recorded:
        later = now_utc() + timedelta(days=2)
        await store.record(RecordRequest(task_id="r", started_at=T0, ended_at=later, status="success"))
    assert recorded.value.field == "ended_at"


# ---- the first outcome stands ------------------------------------------------------------


async def test_a_second_terminal_event_keeps_the_first_outcome_and_is_flagged(store: Store) -> None:
    started = await log(store, "task_started", 0)
    done = await log(store, "task_completed", 1, result="report.json")
    again = await log(store, "task_failed", 2, error=error())
    assert again.event.anomaly is not None and "the first outcome stands" in again.event.anomaly
    assert again.closed_span_id is None
    status = await store.task_status("t")
    assert (status.state, status.result, status.completed_at) == ("completed", "report.json", done.event.ts)
    assert (await store.get(started.opened_span_id or "")).execution.status == "success"


async def test_a_late_start_is_closed_with_the_first_outcome_not_a_later_one(store: Store) -> None:
    await log(store, "task_cancelled", 8, reason="not needed")
    await log(store, "task_completed", 9)
    late_start = await log(store, "task_started", 2)
    assert (await store.get(late_start.opened_span_id or "")).execution.status == "cancelled"
    assert (await store.task_status("t")).state == "cancelled"


async def test_a_new_start_after_an_outcome_begins_a_run_whose_outcome_counts(store: Store) -> None:
    await log(store, "task_started", 0)
    await log(store, "task_completed", 1)
    rerun = await log(store, "task_started", 2)
    failed = await log(store, "task_failed", 3, error=error())
    assert failed.closed_span_id == rerun.opened_span_id and failed.event.anomaly is None
    assert (failed.task.state, failed.task.attempts) == ("failed", 2)


async def test_a_late_start_before_a_run_that_already_ended_opens_no_second_run(store: Store) -> None:
    """Its outcome already closed that run: reusing it would invent a run from this start to then."""
    started = await log(store, "task_started", 100)
    await log(store, "task_completed", 110)
    late = await log(store, "task_started", -10_000)
    assert late.opened_span_id is None and late.closed_span_id is None
    assert late.event.anomaly is not None and "no run opened" in late.event.anomaly
    assert late.event.span_id == started.opened_span_id  # kept in that run's timeline
    page = await store.list_executions(limit=10)
    assert page.total == 1 and page.executions[0].duration_ms == 10_000
    status = await store.task_status("t")
    assert (status.state, status.attempts) == ("completed", 1)


# ---- workers: an outcome before its start ------------------------------------------------


async def test_a_worker_start_that_arrives_after_its_failure_is_closed_with_that_failure(
    store: Store,
) -> None:
    task = await log(store, "task_started", 0)
    failed = await log(store, "worker_failed", 9, worker_id="w1", error=error("worker crashed"))
    assert failed.event.anomaly is not None and "no running execution" in failed.event.anomaly
    late_start = await log(store, "worker_started", 2, worker_id="w1")
    anomaly = late_start.event.anomaly or ""
    assert "out of order" in anomaly and "earlier-arrived worker_failed" in anomaly
    assert late_start.closed_span_id == late_start.opened_span_id is not None
    view = await store.trace(task.event.trace_id or "")
    workers = [e for e in view.executions if e.worker_id == "w1"]
    assert [(e.status, e.duration_ms, e.parent_span_id) for e in workers] == [
        ("failed", 7_000, task.opened_span_id)
    ]
    assert workers[0].error is not None and workers[0].error.message == "worker crashed"
    assert (await store.get(task.opened_span_id or "")).execution.status == "running"


async def test_a_worker_start_after_its_success_is_closed_with_the_result(store: Store) -> None:
    task = await log(store, "task_started", 0)
    await log(store, "worker_completed", 9, worker_id="w1", result="3 findings")
    await log(store, "worker_completed", 9, worker_id="w2", result="other worker")
    late_start = await log(store, "worker_started", 2, worker_id="w1")
    detail = await store.get(late_start.opened_span_id or "")
    assert (detail.execution.status, detail.execution.result) == ("success", "3 findings")
    view = await store.trace(task.event.trace_id or "")
    assert [e.worker_id for e in view.executions if e.worker_id] == ["w1"]


async def test_a_late_spawn_or_start_of_a_worker_run_that_already_ended_opens_nothing(store: Store) -> None:
    task = await log(store, "task_started", 0)
    await log(store, "worker_started", 2, worker_id="w1")
    await log(store, "worker_completed", 5, worker_id="w1")
    late_spawn = await log(store, "worker_spawned", 1, worker_id="w1")
    assert late_spawn.opened_span_id is None and late_spawn.event.span_id is not None
    await log(store, "worker_failed", 9, worker_id="w2", error=error())
    await log(store, "worker_started", 3, worker_id="w2")
    await log(store, "worker_spawned", 1, worker_id="w2")
    view = await store.trace(task.event.trace_id or "")
    workers = [(e.worker_id, e.status) for e in view.executions if e.worker_id]
    assert sorted(workers) == [("w1", "success"), ("w2", "failed")]


async def test_a_worker_started_again_after_its_run_ended_opens_a_new_run(store: Store) -> None:
    await log(store, "task_started", 0)
    await log(store, "worker_started", 1, worker_id="w1")
    await log(store, "worker_failed", 2, worker_id="w1", error=error())
    again = await log(store, "worker_started", 3, worker_id="w1")
    assert again.opened_span_id is not None and again.closed_span_id is None


async def test_of_two_running_runs_of_a_worker_started_together_its_end_closes_the_later_written(
    store: Store,
) -> None:
    """An edited export can hold two running runs of one worker with the same start: the end closes
    the later written of the two (seq breaks the tie, so both engines pick the same run)."""
    await log(store, "task_started", 0)
    first = await log(store, "worker_started", 1, worker_id="w1")
    opened = (await store.get(first.opened_span_id or "")).execution
    twin = opened.model_copy(
        update={"span_id": str(uuid.uuid4()), "execution_id": "twin", "idempotency_key": None}
    )
    await store.import_execution(twin)
    done = await log(store, "worker_completed", 2, worker_id="w1")
    assert done.closed_span_id == twin.span_id
    assert (await store.get(opened.span_id)).execution.status == "running"


# ---- a repeated event_id -------------------------------------------------------------------


async def test_a_repeated_event_id_with_the_same_payload_is_a_no_op(store: Store) -> None:
    req = EventRequest(
        event_type="task_failed", task_id="t", event_id="evt-1", ts=T0,
        data={"error": error(), "note": "mail ann@example.com"},
    )  # fmt: skip
    first = await store.log_event(req)
    again = await store.log_event(req)
    assert (first.duplicate, again.duplicate, again.event) == (False, True, first.event)
    untimed = await store.log_event(req.model_copy(update={"ts": None}))
    assert untimed.duplicate and len((await store.timeline("t")).events) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"event_type": "task_completed"},
        {"task_id": "other-task"},
        {"data": {"error": error("a different failure")}},
        {"ts": T0 + timedelta(seconds=1)},
    ],
)
async def test_a_repeated_event_id_with_a_different_payload_is_a_conflict_and_the_first_stands(
    store: Store, change: dict[str, Any]
) -> None:
    data = {"error": error()}
    req = EventRequest(event_type="task_failed", task_id="t", event_id="evt-1", ts=T0, data=data)
    first = await store.log_event(req)
    with pytest.raises(Conflict) as caught:
        await store.log_event(req.model_copy(update=change))
    assert caught.value.field == "event_id" and caught.value.hint
    assert (await store.timeline("t")).events == [first.event]
    assert (await store.task_status("t")).state == "failed"
