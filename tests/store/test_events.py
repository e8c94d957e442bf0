"""Lifecycle events drive executions and task state (seeds 000 and 004); surprises are kept as anomalies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from store import InvalidInput, Store
from store.models import EventRequest, EventResult, FinishRequest, StartRequest

T0 = datetime(2025, 11, 5, 9, 0, tzinfo=UTC)


async def log(
    store: Store, event_type: str, minute: int, task_id: str = "task-001", **data: Any
) -> EventResult:
    return await store.log_event(
        EventRequest(event_type=event_type, task_id=task_id, actor="security-master", data=data,
                     ts=T0 + timedelta(minutes=minute))
    )  # fmt: skip


async def test_the_seed_000_walk_gives_a_task_execution_a_worker_child_and_a_timeline(store: Store) -> None:
    await log(store, "task_created", 0, priority="high")
    assigned = await log(store, "task_assigned", 1, to="security-master")
    started = await log(store, "task_started", 2)
    await log(store, "worker_spawned", 3, worker_id="worker-scan-001", worker_type="scan-worker")
    await log(store, "worker_started", 4, worker_id="worker-scan-001")
    await log(store, "worker_progress", 5, worker_id="worker-scan-001", note="half way")
    await log(store, "worker_completed", 6, worker_id="worker-scan-001", result="3 findings")
    for step, minute in (("handoff_created", 7), ("handoff_accepted", 8), ("handoff_completed", 9)):
        await log(store, step, minute, handoff_id="h-1")
    done = await log(store, "task_completed", 10, status="success", deliverables=["report.json"])

    assert assigned.task.assigned_to == "security-master"
    assert done.task.state == "completed" and done.task.attempts == 1
    view = await store.trace(started.event.trace_id or "")
    task_exec, worker_exec = view.executions
    assert (task_exec.status, task_exec.duration_ms, task_exec.parent_span_id) == (
        "success",
        8 * 60_000,
        None,
    )
    assert (worker_exec.parent_span_id, worker_exec.worker_id, worker_exec.task_type) == (
        task_exec.span_id, "worker-scan-001", "scan-worker")  # fmt: skip
    assert worker_exec.result == "3 findings" and worker_exec.duration_ms == 3 * 60_000
    assert [e.event_type for e in view.events][:2] == ["task_created", "task_assigned"]
    assert len(view.events) == 11 and all(e.anomaly is None for e in view.events)
    assert [n.note for n in done.task.notes] == ["half way"]


async def test_a_failed_task_event_closes_the_execution_with_the_error_from_its_data(store: Store) -> None:
    started = await log(store, "task_started", 0)
    failed = await log(store, "task_failed", 1, error={"type": "TimeoutError", "message": "scan timed out"})
    detail = await store.get(started.opened_span_id or "")
    assert failed.task.state == "failed" and detail.execution.status == "failed"
    assert detail.execution.error is not None and detail.execution.error.type == "TimeoutError"


async def test_a_failure_without_error_details_is_kept_with_a_placeholder_and_an_anomaly(
    store: Store,
) -> None:
    await log(store, "task_started", 0)
    failed = await log(store, "task_failed", 1, reason="gave up")
    assert failed.event.anomaly and "data.error" in failed.event.anomaly
    detail = await store.get(failed.closed_span_id or "")
    assert detail.execution.error is not None and detail.execution.error.message == "gave up"


async def test_starting_again_after_a_failure_is_a_retry_on_the_same_trace(store: Store) -> None:
    first = await log(store, "task_started", 0)
    await log(store, "task_failed", 1, error={"type": "E", "message": "m"})
    second = await log(store, "task_started", 2)
    view = await store.trace(first.event.trace_id or "")
    assert second.task.attempts == 2 and [e.attempt for e in view.executions] == [1, 2]
    assert view.executions[1].retry_of == first.opened_span_id and view.retry_count == 1


async def test_blocking_escalating_and_reassigning_change_the_state_and_stay_in_the_timeline(
    store: Store,
) -> None:
    await log(store, "task_started", 0)
    assert (await log(store, "task_blocked", 1, reason="waiting on T1")).task.state == "blocked"
    assert (await log(store, "task_unblocked", 2)).task.state == "in_progress"
    assert (await log(store, "task_escalated", 3)).task.state == "escalated"
    moved = await log(store, "task_reassigned", 4, to="infra-master")
    assert (moved.task.state, moved.task.assigned_to) == ("assigned", "infra-master")
    status = await store.task_status("task-001")
    assert [n.note for n in status.notes] == ["waiting on T1"]


async def test_an_event_that_arrives_out_of_order_is_kept_and_flagged(store: Store) -> None:
    await log(store, "task_started", 5)
    await log(store, "task_completed", 9)
    late = await log(store, "worker_progress", 7, worker_id="w")
    assert late.event.anomaly is not None and "out of order" in late.event.anomaly
    assert late.task.state == "completed"


async def test_a_start_that_arrives_after_its_outcome_gets_a_closed_execution(store: Store) -> None:
    done = await log(store, "task_completed", 9)
    assert done.event.anomaly is not None and "no running execution" in done.event.anomaly
    late_start = await log(store, "task_started", 2)
    detail = await store.get(late_start.opened_span_id or "")
    assert detail.execution.status == "success" and detail.execution.duration_ms == 7 * 60_000
    assert (await store.task_status("task-001")).state == "completed"


async def test_a_repeated_event_id_is_stored_once(store: Store) -> None:
    req = EventRequest(event_type="task_created", task_id="t", event_id="evt-1", ts=T0)
    first = await store.log_event(req)
    again = await store.log_event(req)
    assert (first.duplicate, again.duplicate) == (False, True) and again.event == first.event


async def test_start_and_finish_calls_give_the_same_task_state_as_events(store: Store) -> None:
    started = (await store.start(StartRequest(task_id="api-task"))).execution
    assert (await store.task_status("api-task")).state == "in_progress"
    await store.finish(FinishRequest(span_id=started.span_id, status="partial"))
    status = await store.task_status("api-task")
    assert (status.state, status.attempts, status.current_span_id) == ("completed", 1, started.span_id)


@pytest.mark.parametrize(
    "event_type, data, field",
    [
        ("task_exploded", {}, "event_type"),
        ("TASK_CREATED", {}, "event_type"),
        ("worker_started", {}, "data.worker_id"),
        ("handoff_created", {"handoff_id": " "}, "data.handoff_id"),
    ],
)
async def test_malformed_events_are_refused_naming_the_field(
    store: Store, event_type: str, data: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        await store.log_event(EventRequest(event_type=event_type, task_id="t", data=data))
    assert caught.value.field == field


async def test_namespaced_custom_events_are_kept_without_changing_state(store: Store) -> None:
    await log(store, "task_started", 0)
    custom = await log(store, "acme.deploy_finished", 1, env="prod")
    assert custom.task.state == "in_progress" and custom.event.anomaly is None
    assert custom.event.span_id is not None


async def test_secrets_in_event_data_are_scrubbed_but_ids_are_not(store: Store) -> None:
    wid = "2f1c4a4e-7d0b-4f53-9c55-0d7c3a0c9e11"
    spawned = await log(
        store, "worker_spawned", 0, worker_id=wid, note="token=abc123secretvalue for ann@example.com"
    )
    assert spawned.event.data["worker_id"] == wid
    assert (
        "ann@example.com" not in spawned.event.data["note"]
        and "abc123secretvalue" not in spawned.event.data["note"]
    )
