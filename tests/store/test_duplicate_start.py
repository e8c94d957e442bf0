"""A task_started that arrives while the task's execution is running opens nothing, so it is no new
attempt: the task's attempt count follows its executions (the event stays, with its anomaly)."""

from __future__ import annotations

from store import Store
from store.models import EventRequest


async def test_a_repeated_task_started_counts_one_attempt_for_one_execution(store: Store) -> None:
    first = await store.log_event(EventRequest(event_type="task_started", task_id="t"))
    again = await store.log_event(EventRequest(event_type="task_started", task_id="t"))
    assert first.opened_span_id is not None and again.opened_span_id is None
    assert again.event.anomaly is not None
    assert (await store.task_status("t")).attempts == 1
    page = await store.list_executions(limit=10)
    assert [e.span_id for e in page.executions] == [first.opened_span_id]
