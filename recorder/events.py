"""The 18 lifecycle events of seed 000 as plain methods of the recorder. Each takes the task id,
the keyword options of `Recorder.event` (run, span_id, trace_id, actor, ts, event_id) and the
event's data as further keywords; each returns the event_id. Worker events name their worker
(`worker_id`), handoff events their handoff (`handoff_id`), as the store requires."""

from __future__ import annotations

from typing import Any


class LifecycleEvents:
    def event(self, event_type: str, task_id: str, **options: Any) -> str:  # Recorder.event
        raise NotImplementedError

    def task_created(self, task_id: str, **options: Any) -> str:
        """The task was created."""
        return self.event("task_created", task_id, **options)

    def task_assigned(self, task_id: str, **options: Any) -> str:
        """The task was assigned (to a master); pass assigned_to=..."""
        return self.event("task_assigned", task_id, **options)

    def task_started(self, task_id: str, **options: Any) -> str:
        """Work on the task started (the store opens an execution for it)."""
        return self.event("task_started", task_id, **options)

    def worker_spawned(self, task_id: str, worker_id: str, **options: Any) -> str:
        """A worker agent was created for the task (opens a child execution)."""
        return self.event("worker_spawned", task_id, worker_id=worker_id, **options)

    def worker_started(self, task_id: str, worker_id: str, **options: Any) -> str:
        """A worker began executing."""
        return self.event("worker_started", task_id, worker_id=worker_id, **options)

    def worker_progress(self, task_id: str, worker_id: str, **options: Any) -> str:
        """A worker reports progress (e.g. progress_percentage=50)."""
        return self.event("worker_progress", task_id, worker_id=worker_id, **options)

    def worker_completed(self, task_id: str, worker_id: str, **options: Any) -> str:
        """A worker finished successfully (closes its execution)."""
        return self.event("worker_completed", task_id, worker_id=worker_id, **options)

    def worker_failed(self, task_id: str, worker_id: str, **options: Any) -> str:
        """A worker failed; pass error={'type': ..., 'message': ...} (closes its execution)."""
        return self.event("worker_failed", task_id, worker_id=worker_id, **options)

    def task_completed(self, task_id: str, **options: Any) -> str:
        """The task finished (status='partial' for a partial result; closes its execution)."""
        return self.event("task_completed", task_id, **options)

    def task_failed(self, task_id: str, **options: Any) -> str:
        """The task failed; pass error={'type': ..., 'message': ...}."""
        return self.event("task_failed", task_id, **options)

    def task_blocked(self, task_id: str, **options: Any) -> str:
        """The task is blocked by a dependency; pass reason=..."""
        return self.event("task_blocked", task_id, **options)

    def task_unblocked(self, task_id: str, **options: Any) -> str:
        """The dependency was resolved."""
        return self.event("task_unblocked", task_id, **options)

    def task_reassigned(self, task_id: str, **options: Any) -> str:
        """The task moved to another master; pass assigned_to=..."""
        return self.event("task_reassigned", task_id, **options)

    def task_escalated(self, task_id: str, **options: Any) -> str:
        """The task needs intervention; pass reason=..."""
        return self.event("task_escalated", task_id, **options)

    def task_cancelled(self, task_id: str, **options: Any) -> str:
        """The task was cancelled."""
        return self.event("task_cancelled", task_id, **options)

    def handoff_created(self, task_id: str, handoff_id: str, **options: Any) -> str:
        """A cross-master handoff started."""
        return self.event("handoff_created", task_id, handoff_id=handoff_id, **options)

    def handoff_accepted(self, task_id: str, handoff_id: str, **options: Any) -> str:
        """The handoff was accepted."""
        return self.event("handoff_accepted", task_id, handoff_id=handoff_id, **options)

    def handoff_completed(self, task_id: str, handoff_id: str, **options: Any) -> str:
        """The handoff's work finished."""
        return self.event("handoff_completed", task_id, handoff_id=handoff_id, **options)
