"""The recorder on a database file (in process): executions as context managers and decorators,
sync and async, failures with their traceback, retries chained in one trace, lifecycle events."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from recorder import Recorder, current_run
from store import Store
from store.lifecycle import LIFECYCLE_EVENT_TYPES
from store.models import Execution, ExecutionFilter, TaskTimeline


@pytest.fixture
def rec(db_path: Path) -> Iterator[Recorder]:
    recorder = Recorder.direct(db_path, actor="test-agent")
    yield recorder
    recorder.close()


def executions(db_path: Path, **filters: object) -> list[Execution]:
    async def read() -> list[Execution]:
        async with await Store.open(str(db_path)) as store:
            page = await store.list_executions(ExecutionFilter(**filters), limit=100)  # type: ignore[arg-type]
            return list(reversed(page.executions))

    return asyncio.run(read())


def test_a_normal_exit_records_success_with_what_the_run_added(rec: Recorder, db_path: Path) -> None:
    with rec.execution(
        "daily_reflection", name="Daily Self-Reflection", type="reflection", trigger="scheduled",
        scheduled_at=datetime(2025, 11, 4, 18, 29, tzinfo=UTC), parents=["exp_1", "exp_2"],
        retrieval={"memory_count": 2, "query": "today"}, causes=["goal_1"], attributes={"model": "m-1"},
    ) as run:  # fmt: skip
        run.add_files("reflections/2025-11-04.md")
        run.add_tool_calls("call-1")
        run.add_usage(input_tokens=100, output_tokens=20, cost=0.01)
        run.add_usage(input_tokens=50)
        run.set_result("wrote the reflection")
        assert current_run() is run and run.span_id == run.ref
    assert current_run() is None and run.status == "success"
    (e,) = executions(db_path)
    assert (e.task_id, e.task_name, e.task_type, e.trigger, e.actor) == (
        "daily_reflection", "Daily Self-Reflection", "reflection", "scheduled", "test-agent",
    )  # fmt: skip
    assert (e.status, e.result, e.io.files_written, e.io.tool_calls) == (
        "success", "wrote the reflection", ["reflections/2025-11-04.md"], ["call-1"],
    )  # fmt: skip
    assert (e.usage.input_tokens, e.usage.output_tokens, e.usage.cost) == (150, 20, 0.01)
    assert (e.parents, e.causes, e.retrieval.query, e.attributes) == (
        ["exp_1", "exp_2"],
        ["goal_1"],
        "today",
        {"model": "m-1"},
    )
    assert e.trace_id == run.trace_id and e.scheduled_at is not None and e.duration_ms is not None


def test_an_exception_records_failed_with_type_message_and_traceback_and_is_reraised(
    rec: Recorder, db_path: Path
) -> None:
    def deep() -> None:
        raise KeyError("user 42 missing")

    with pytest.raises(KeyError), rec.execution("nightly_ingest"):
        deep()
    (e,) = executions(db_path)
    assert e.status == "failed" and e.error is not None
    assert (e.error.type, e.error.message) == ("KeyError", "'user 42 missing'")
    assert e.error.stack is not None and "in deep" in e.error.stack and e.error.stack_hash


def test_mark_partial_and_keyboard_interrupt(rec: Recorder, db_path: Path) -> None:
    with rec.execution("a") as run:
        run.mark_partial("only half of the sources answered")
    with pytest.raises(KeyboardInterrupt), rec.execution("b"):
        raise KeyboardInterrupt
    partial, cancelled = executions(db_path)
    assert (partial.status, partial.result) == ("partial", "only half of the sources answered")
    assert (cancelled.status, cancelled.error and cancelled.error.type) == ("cancelled", "KeyboardInterrupt")


def test_retry_records_each_attempt_in_one_trace_chained_by_retry_of(rec: Recorder, db_path: Path) -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TimeoutError(f"attempt {len(calls)} timed out")
        return "done"

    assert rec.retry(flaky, "flaky", attempts=3) == "done"
    first, second, third = executions(db_path)
    assert [e.attempt for e in (first, second, third)] == [1, 2, 3]
    assert [e.status for e in (first, second, third)] == ["failed", "failed", "success"]
    assert {second.trace_id, third.trace_id} == {first.trace_id}
    assert (second.retry_of, third.retry_of) == (first.span_id, second.span_id)


def test_retry_gives_up_after_the_last_attempt_and_reraises(rec: Recorder, db_path: Path) -> None:
    def always() -> None:
        raise ValueError("bad config")

    with pytest.raises(ValueError, match="bad config"):
        rec.retry(always, "doomed", attempts=2)
    assert [e.status for e in executions(db_path)] == ["failed", "failed"]


def test_an_error_outside_retry_on_is_not_retried(rec: Recorder, db_path: Path) -> None:
    def wrong() -> None:
        raise TypeError("a bug")

    with pytest.raises(TypeError):
        rec.retry(wrong, "bug", attempts=3, retry_on=(TimeoutError,))
    assert len(executions(db_path)) == 1


def test_the_decorator_records_sync_functions_with_retries(rec: Recorder, db_path: Path) -> None:
    calls: list[int] = []

    @rec.task("report", attempts=2, type="report")
    def report(day: str) -> str:
        calls.append(1)
        run = current_run()
        assert run is not None
        if len(calls) == 1:
            raise ConnectionError("db down")
        run.set_result(f"report for {day}")
        return day

    assert report("2025-11-04") == "2025-11-04"
    first, second = executions(db_path)
    assert (first.status, second.status, second.result, second.task_type) == (
        "failed", "success", "report for 2025-11-04", "report",
    )  # fmt: skip


async def test_the_async_context_manager_and_decorator(db_path: Path) -> None:
    async with Recorder.direct(db_path) as rec:

        @rec.task()
        async def summarize() -> int:
            await asyncio.sleep(0)
            run = current_run()
            assert run is not None
            run.add_usage(output_tokens=7)
            return 7

        assert await summarize() == 7
        async with rec.execution("async-block") as run:
            run.set_result("ok")
        with pytest.raises(RuntimeError):
            async with rec.execution("async-fail"):
                raise RuntimeError("boom")
        assert await rec.aflush(10)
    names = {e.task_id: e for e in await asyncio.to_thread(executions, db_path)}
    assert names["test_the_async_context_manager_and_decorator.<locals>.summarize"].usage.output_tokens == 7
    assert (names["async-block"].status, names["async-fail"].status) == ("success", "failed")


def test_a_scheduled_slot_run_twice_is_recorded_once(rec: Recorder, db_path: Path) -> None:
    slot = datetime(2025, 11, 4, 18, 0, tzinfo=UTC)
    with rec.execution("daily", trigger="scheduled", scheduled_at=slot):
        pass
    with rec.execution("daily", trigger="scheduled", scheduled_at=slot) as again:
        pass
    assert len(executions(db_path)) == 1 and again.span_id == executions(db_path)[0].span_id


def test_a_duplicate_start_takes_the_store_trace_and_attempt(rec: Recorder, db_path: Path) -> None:
    slot = datetime(2025, 11, 4, 18, 0, tzinfo=UTC)
    with rec.execution("daily", trigger="scheduled", scheduled_at=slot) as first:
        pass
    with rec.execution("daily", trigger="scheduled", scheduled_at=slot) as again:  # the same slot again
        pass
    with rec.execution("daily", retry_of=first.span_id) as retry:  # a span_id, not a Run: attempt unknown
        pass
    assert rec.flush(10) and rec.refused == []
    stored, second = executions(db_path)
    assert (first.duplicate, again.duplicate) == (False, True)
    assert (again.span_id, again.trace_id, again.attempt) == (stored.span_id, stored.trace_id, 1)
    assert (retry.trace_id, retry.attempt) == (stored.trace_id, 2) == (second.trace_id, second.attempt)

    async def trace_spans(trace_id: str) -> list[str]:
        async with await Store.open(str(db_path)) as store:
            view = await store.trace(trace_id)
            return [e.span_id for e in view.executions] if view.found else []

    assert asyncio.run(trace_spans(str(again.trace_id))) == [stored.span_id, second.span_id]


def test_children_join_the_parent_trace(rec: Recorder, db_path: Path) -> None:
    with rec.execution("master") as parent, rec.execution("master", parent=parent, type="worker") as child:
        assert child.trace_id == parent.trace_id
    master, worker = executions(db_path)
    assert (worker.parent_span_id, worker.trace_id) == (master.span_id, master.trace_id)


def test_the_18_lifecycle_events_are_methods_and_drive_the_task(rec: Recorder, db_path: Path) -> None:
    failure = {"type": "TimeoutError", "message": "scanner timed out"}
    calls: list[tuple[str, str, str]] = []  # (task, type, event_id) in the order they were called

    def emit(name: str, task: str, *args: str, **data: object) -> None:
        calls.append((task, name, getattr(rec, name)(task, *args, **data)))

    emit("task_created", "task-001", priority="high")
    emit("task_assigned", "task-001", assigned_to="security-master")
    emit("task_started", "task-001")  # opens attempt 1
    emit("worker_spawned", "task-001", "worker-scan-001", worker_type="scan-worker")
    emit("worker_started", "task-001", "worker-scan-001")
    emit("worker_progress", "task-001", "worker-scan-001", progress_percentage=50)
    emit("worker_completed", "task-001", "worker-scan-001")
    emit("worker_spawned", "task-001", "worker-lint-002", worker_type="lint-worker")
    emit("worker_failed", "task-001", "worker-lint-002", error=failure)
    emit("task_blocked", "task-001", reason="waiting for the dependency scan")
    emit("task_unblocked", "task-001")
    emit("task_reassigned", "task-001", assigned_to="dev-master")
    emit("task_escalated", "task-001", reason="two workers disagree")
    emit("handoff_created", "task-001", "h-1", to_master="review-master")
    emit("handoff_accepted", "task-001", "h-1")
    emit("handoff_completed", "task-001", "h-1")
    emit("task_failed", "task-001", error=failure)  # closes attempt 1
    emit("task_started", "task-001")  # attempt 2 retries it
    emit("task_completed", "task-001", deliverables=["report.json"])
    emit("task_created", "task-002")
    emit("task_started", "task-002")
    emit("task_cancelled", "task-002", reason="superseded by task-001")
    assert {name for _, name, _ in calls} == set(LIFECYCLE_EVENT_TYPES) and len(LIFECYCLE_EVENT_TYPES) == 18
    assert rec.flush(10) and rec.refused == []

    async def read(task: str) -> TaskTimeline:
        async with await Store.open(str(db_path)) as store:
            return await store.timeline(task)

    for task, state in (("task-001", "completed"), ("task-002", "cancelled")):
        timeline = asyncio.run(read(task))
        stored = [(e.event_type, e.event_id, e.anomaly) for e in timeline.events]
        assert stored == [(name, event_id, None) for t, name, event_id in calls if t == task]
        assert timeline.task is not None and timeline.task.state == state
    runs = asyncio.run(read("task-001")).executions
    assert sorted((e.worker_id or "", e.attempt, e.status) for e in runs) == [
        ("", 1, "failed"), ("", 2, "success"), ("worker-lint-002", 1, "failed"),
        ("worker-scan-001", 1, "success"),
    ]  # fmt: skip
    assert [e.status for e in asyncio.run(read("task-002")).executions] == ["cancelled"]


def test_a_refused_record_is_a_warning_not_an_exception(
    rec: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    rec.worker_spawned("t", "")  # the store refuses a worker event that names no worker
    assert rec.flush(10)
    assert len(rec.refused) == 1 and "worker" in rec.refused[0]
    assert "refused" in caplog.text
