"""What the write tools answer: receipts built from the store's write results, each with a short
`render()` that names the ids the caller needs next (a span_id to finish, a trace to read)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self

from pydantic import Field

from server.render import duration, plural
from server.results import ExecutionSummary, Part, ToolResult
from store.models import EventResult, Execution, FinishResult, StartResult


class Started(ToolResult):
    execution_id: str
    task_id: str
    trace_id: str
    span_id: str = Field(description="pass to tasks_finish when the execution ends")
    attempt: int
    status: str
    started_at: datetime
    duplicate: bool = Field(description="true when this idempotency key was already recorded (nothing new)")

    @classmethod
    def of(cls, result: StartResult) -> Self:
        e = result.execution
        fields = e.model_dump(include={"execution_id", "task_id", "trace_id", "span_id", "attempt", "status"})
        return cls(**fields, started_at=e.started_at, duplicate=result.duplicate)

    def render(self) -> str:
        ids = f"span_id={self.span_id} trace_id={self.trace_id}"
        if self.duplicate:
            return (
                "Already recorded under this idempotency key: "
                f"execution {self.execution_id} ({ids}); nothing new."
            )
        return (
            f"Started execution {self.execution_id} of {self.task_id}, attempt {self.attempt} ({ids}). "
            "Call tasks_finish with this span_id when it ends."
        )


class Finished(ExecutionSummary):
    stack_hash: str | None = Field(description="the error's fingerprint, when it failed")
    already_finished: bool = Field(description="true when this outcome had already been recorded")

    @classmethod
    def of_result(cls, result: FinishResult) -> Self:
        return cls._outcome(result.execution, already_finished=result.already_finished)

    @classmethod
    def _outcome(cls, e: Execution, **extra: Any) -> Self:
        return cls.of(e, stack_hash=e.error.stack_hash if e.error else None, **extra)

    def render(self) -> str:
        if self.already_finished:
            return f"Execution {self.id} had already finished as {self.status}; nothing changed."
        error = f" - {self.error.type} (stack_hash {self.stack_hash})" if self.error else ""
        took = duration(self.duration_ms)
        return f"Finished execution {self.id} of {self.task_id}: {self.status} in {took}{error}."


class Recorded(Finished):
    already_finished: bool = False
    duplicate: bool = Field(description="true when this execution was already recorded (nothing new)")

    @classmethod
    def of_start(cls, result: StartResult) -> Self:
        return cls._outcome(result.execution, duplicate=result.duplicate)

    def render(self) -> str:
        if self.duplicate:
            return (
                f"Already recorded: execution {self.id} ({self.status}, span_id={self.span_id}); nothing new."
            )
        text = super().render().replace("Finished execution", "Recorded execution", 1)
        return f"{text} span_id={self.span_id} trace_id={self.trace_id}"


class TaskState(Part):
    task_id: str
    state: str = Field(description="pending | assigned | in_progress | blocked | completed | failed | ...")
    attempts: int
    assigned_to: str | None
    current_trace_id: str | None
    current_span_id: str | None


class EventLogged(ToolResult):
    event_id: str
    event_type: str
    ts: datetime
    task: TaskState = Field(description="the task's state after this event")
    anomaly: str | None = Field(description="why this event was surprising (it is stored anyway)")
    duplicate: bool = Field(description="true when this event_id was already recorded (nothing new)")
    opened_span_id: str | None = Field(description="the execution this event opened, if any")
    closed_span_id: str | None = Field(description="the execution this event closed, if any")

    @classmethod
    def of(cls, result: EventResult) -> Self:
        ev = result.event
        return cls(
            **result.model_dump(include={"duplicate", "opened_span_id", "closed_span_id"}),
            **ev.model_dump(include={"event_id", "event_type", "ts", "anomaly"}),
            task=TaskState(**result.task.model_dump(include=set(TaskState.model_fields))),
        )

    def render(self) -> str:
        if self.duplicate:
            return f"Event {self.event_id} was already recorded; nothing changed."
        text = (
            f"Logged {self.event_type} for {self.task.task_id} (event_id={self.event_id}); the task is now "
            f"{self.task.state} after {plural(self.task.attempts, 'attempt')}."
        )
        text += f" Opened span_id={self.opened_span_id}." if self.opened_span_id else ""
        text += f" Closed span_id={self.closed_span_id}." if self.closed_span_id else ""
        return text + (f" Anomaly: {self.anomaly}" if self.anomaly else "")
