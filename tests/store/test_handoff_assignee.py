"""A handoff moves the task: once accepted, the task is assigned to the master that accepted it
(data.accepted_by / to_master / to, else the event's actor); created and completed leave it."""

from __future__ import annotations

import pytest

from store import Store
from store.models import EventRequest


async def _walk(store: Store, accepted: EventRequest) -> str | None:
    for event_type, actor in [("task_created", "user"), ("task_assigned", "security-master")]:
        await store.log_event(EventRequest(event_type=event_type, task_id="t", actor=actor))
    await store.log_event(EventRequest(event_type="task_started", task_id="t", actor="security-master"))
    created = EventRequest(event_type="handoff_created", task_id="t", actor="security-master",
                           data={"handoff_id": "h1", "to_master": "dev-master"})  # fmt: skip
    after_created = (await store.log_event(created)).task
    assert after_created.assigned_to == "security-master"
    return (await store.log_event(accepted)).task.assigned_to


@pytest.mark.parametrize(
    ("actor", "data", "assignee"),
    [
        ("dev-master", {"handoff_id": "h1"}, "dev-master"),
        ("coordinator", {"handoff_id": "h1", "accepted_by": "dev-master"}, "dev-master"),
    ],
)
async def test_an_accepted_handoff_assigns_the_task_to_the_accepting_master(
    store: Store, actor: str, data: dict[str, str], assignee: str
) -> None:
    accepted = EventRequest(event_type="handoff_accepted", task_id="t", actor=actor, data=data)
    assert await _walk(store, accepted) == assignee
    state = await store.task_status("t")
    assert (state.state, state.assigned_to) == ("in_progress", assignee)
