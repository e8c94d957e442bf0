"""A worker and handoff flow (seed 000): a task is created and assigned to a master, whose execution
spawns a worker and hands the review to another master; the review is a child execution.

    make serve                              # in another terminal
    .venv/bin/python examples/worker_handoff.py --url http://127.0.0.1:8001/mcp

The lifecycle events are plain method calls (rec.task_created, rec.worker_spawned, ...); worker
events open and close the worker's own child execution, handoff events go on the task's timeline."""

from __future__ import annotations

import sys
import uuid

from _connect import finish, recorder_from_args


def main() -> int:
    rec = recorder_from_args(__doc__.splitlines()[0])
    task = f"release-notes-{uuid.uuid4().hex[:6]}"
    rec.task_created(task, actor="user-ryan", priority="high", note="draft the November release notes")
    rec.task_assigned(task, actor="coordinator-master", assigned_to="docs-master")
    with rec.execution(task, name="Release notes", type="docs", actor="docs-master") as master:
        rec.worker_spawned(task, "worker-collect-001", run=master, worker_type="collector")
        rec.worker_progress(task, "worker-collect-001", run=master, progress_percentage=50)
        rec.worker_completed(
            task, "worker-collect-001", run=master, result="collected 42 merged pull requests"
        )
        rec.handoff_created(
            task, "handoff-001", run=master, from_master="docs-master", to_master="review-master"
        )
        rec.handoff_accepted(task, "handoff-001", run=master, actor="review-master")
        with rec.execution(
            task, name="Review release notes", type="review", actor="review-master", parent=master
        ) as review:
            review.add_files("docs/release-notes-2025-11.md")
            review.set_result("approved with two wording fixes")
        rec.handoff_completed(task, "handoff-001", run=master, actor="review-master")
        master.add_files("docs/release-notes-2025-11.md")
        master.set_result("release notes published")
    status = finish(rec)  # delivered: master.trace_id is the store's
    print(f"{task}: master {master.status}, review {review.status}, trace {master.trace_id}")
    return status


if __name__ == "__main__":
    sys.exit(main())
