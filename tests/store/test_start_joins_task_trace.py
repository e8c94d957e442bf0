"""tasks_start without a trace_id puts a task's first run on the trace its earlier lifecycle events
opened (task_created, task_assigned), as a task_started event does; later runs get a trace of their own."""

from __future__ import annotations

from store import Store
from store.models import EventRequest, FinishRequest, StartRequest


async def test_a_first_start_joins_the_trace_task_created_opened(store: Store) -> None:
    created = await store.log_event(EventRequest(event_type="task_created", task_id="t1"))
    started = (await store.start(StartRequest(task_id="t1"))).execution
    assert started.trace_id == created.event.trace_id
    view = await store.trace(started.trace_id)
    assert view.events[0].event_type == "task_created"
    assert [e.span_id for e in view.executions] == [started.span_id]


async def test_a_later_run_of_the_task_gets_a_new_trace(store: Store) -> None:
    await store.log_event(EventRequest(event_type="task_created", task_id="t2"))
    first = (await store.start(StartRequest(task_id="t2"))).execution
    await store.finish(FinishRequest(span_id=first.span_id, status="success"))
    second = (await store.start(StartRequest(task_id="t2"))).execution
    assert second.trace_id != first.trace_id


async def test_an_explicit_trace_id_is_kept(store: Store) -> None:
    await store.log_event(EventRequest(event_type="task_created", task_id="t3"))
    given = "6f1c3d1e-8a2b-4c3d-9e4f-5a6b7c8d9e0f"
    assert (await store.start(StartRequest(task_id="t3", trace_id=given))).execution.trace_id == given
