"""`task-history export --otlp`: executions as OpenTelemetry spans, sent over OTLP/HTTP with the
official SDK (opentelemetry-sdk + opentelemetry-exporter-otlp-proto-http). It lives in server/
because the store never imports OpenTelemetry.

What a span is made of:

* ids: the trace id is the trace_id UUID's 128 bits; the span id is the **last 64 bits** of the
  span_id UUID (its random half: the first half carries the version nibble). The full UUIDs are
  kept as `task.trace_id` / `task.span_id` attributes;
* parent: `parent_span_id` (a worker or child execution is a child span); retries are **links**
  from attempt n to attempt n-1 (`task.link.type = retry_of`), all on the first attempt's trace;
* status: success -> OK; failed -> ERROR (its message as the description); partial, cancelled ->
  UNSET. Running executions are not exported yet (a span needs its end);
* attributes: seed 003's `task.*` names (task.id, task.type, task.title, task.status,
  task.parent_id) and more `task.*` for the rest of the record; the OpenTelemetry names where one
  exists: gen_ai.usage.input_tokens / output_tokens, error.type, and an `exception` span event
  (exception.type / message / stacktrace) for a failure;
* events: the lifecycle events of the execution, as span events named after their type; events of
  the trace that belong to no execution (task_created, task_assigned ...) go on its first
  top-level span.

Best effort: an endpoint that does not take a batch is a warning, and that batch and the rest are
written to an NDJSON file instead, one OTLP/JSON ExportTraceServiceRequest per span (hex ids, integer
enums: what the Collector's otlpjsonfile receiver reads). A span delivered to an endpoint is
remembered (store: span_exports), so exporting the same range again sends nothing twice; spans that
went to the fallback file are not, and go out with the next export."""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import logging
import os
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from store.errors import InvalidInput
from store.models import Execution, ExecutionFilter, LifecycleEvent
from store.store import Store
from store.timeutil import iso_z, now_utc, to_us

log = logging.getLogger("task_history.otlp")
DEFAULT_ENDPOINT = "http://localhost:4318"
TRACES_PATH = "/v1/traces"
BATCH = 512
_LOW_64 = (1 << 64) - 1
_TEXT_MAX = 4096  # longest free text put in an attribute (results, queries)
_STATUS = {
    "success": StatusCode.OK,
    "failed": StatusCode.ERROR,
    "partial": StatusCode.UNSET,
    "cancelled": StatusCode.UNSET,
}
AttributeValue = str | bool | int | float | Sequence[str]


def trace_id_of(value: str) -> int:
    return _id_bits(value)


def span_id_of(value: str) -> int:
    return _id_bits(value) & _LOW_64


def _id_bits(value: str) -> int:
    """The UUID's 128 bits; an id that is no UUID (a store filled around its write path) gets the
    first 128 bits of its sha256, so the export still runs and stays stable across runs."""
    try:
        return uuid.UUID(value).int
    except ValueError:
        return int.from_bytes(hashlib.sha256(value.encode()).digest()[:16], "big") or 1


def endpoint_of(given: str | None, environ: dict[str, str] | None = None) -> str:
    """The OTLP/HTTP traces URL: the flag's value, else OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (as is),
    else OTEL_EXPORTER_OTLP_ENDPOINT, else localhost:4318; a base URL gets /v1/traces. Anything but an
    http(s) URL is refused before a span is built: a file path once went out as a URL, failed inside
    the exporter and left the spans in a fallback file."""
    env = os.environ if environ is None else environ
    if not given and env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return _checked_url("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"])
    source = "otlp" if given else "OTEL_EXPORTER_OTLP_ENDPOINT"
    base = _checked_url(source, given or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or DEFAULT_ENDPOINT)
    base = base.rstrip("/")
    return base if base.endswith(TRACES_PATH) else base + TRACES_PATH


def _checked_url(source: str, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.hostname:
        return url
    raise InvalidInput(
        source,
        f"{url!r} is not an http:// or https:// URL",
        hint=f"Give the collector's OTLP/HTTP address, e.g. {DEFAULT_ENDPOINT} "
        f"(a base URL gets {TRACES_PATH}).",
    )


# ---- building spans --------------------------------------------------------------------------


def _resource() -> Resource:
    from server.app import _version

    return Resource.create(
        {"service.name": os.environ.get("OTEL_SERVICE_NAME", "task-history"), "service.version": _version()}
    )


def _context(trace_id: str, span_id: str) -> SpanContext:
    return SpanContext(trace_id_of(trace_id), span_id_of(span_id), is_remote=False, trace_flags=TraceFlags(1))


def _ns(moment: datetime) -> int:
    return to_us(moment) * 1000


def _text(value: str | None) -> str | None:
    return None if value is None else value[:_TEXT_MAX]


def _value(value: Any) -> AttributeValue | None:
    """An attribute value: scalars as they are, lists of scalars as string lists, the rest as JSON."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value  # type: ignore[no-any-return]
    if isinstance(value, list) and all(isinstance(v, (str, int, float, bool)) for v in value):
        return [str(v) for v in value]
    return json.dumps(value, sort_keys=True, default=str)


def attributes_of(e: Execution, parent_task: str | None) -> dict[str, AttributeValue]:
    a: dict[str, Any] = {
        "task.id": e.task_id, "task.type": e.task_type or "task", "task.title": e.task_name or e.task_id,
        "task.status": e.status, "task.parent_id": parent_task, "task.slug": e.task_slug,
        "task.execution_id": e.execution_id, "task.trace_id": e.trace_id, "task.span_id": e.span_id,
        "task.parent_span_id": e.parent_span_id, "task.attempt": e.attempt, "task.retry_of": e.retry_of,
        "task.trigger": e.trigger, "task.actor": e.actor, "task.worker_id": e.worker_id,
        "task.session_id": e.session_id, "task.idempotency_key": e.idempotency_key,
        "task.scheduled_at": iso_z(e.scheduled_at) if e.scheduled_at else None,
        "task.duration_ms": e.duration_ms, "task.result": _text(e.result), "task.backfilled": e.backfilled,
        "task.scrubbed": e.scrubbed, "task.parents": e.parents or None, "task.causes": e.causes or None,
        "task.config_digest": e.task_config_digest, "task.usage.cost": e.usage.cost,
        "gen_ai.usage.input_tokens": e.usage.input_tokens,
        "gen_ai.usage.output_tokens": e.usage.output_tokens,
    }  # fmt: skip
    r = e.retrieval
    a |= {
        "task.retrieval.memory_count": r.memory_count, "task.retrieval.query": _text(r.query),
        "task.retrieval.latency_ms": r.latency_ms, "task.retrieval.source": r.source or None,
    }  # fmt: skip
    for name in ("files_written", "artifact_ids", "tool_calls", "script_runs"):
        a[f"task.io.{name}"] = getattr(e.io, name) or None
    if e.error is not None:
        a |= {"error.type": e.error.type, "task.error.stack_hash": e.error.stack_hash}
    for key, value in e.attributes.items():
        a[f"task.attributes.{key}"] = value
    return {key: v for key, value in a.items() if (v := _value(value)) is not None}


def _event_attributes(ev: LifecycleEvent) -> dict[str, AttributeValue]:
    a: dict[str, Any] = {
        "task.event.id": ev.event_id,
        "task.event.actor": ev.actor,
        "task.event.anomaly": ev.anomaly,
    }
    a |= {f"task.event.data.{key}": value for key, value in ev.data.items()}
    return {key: v for key, value in a.items() if (v := _value(value)) is not None}


def _events_of(e: Execution, events: list[LifecycleEvent]) -> list[Event]:
    out = [Event(ev.event_type, _event_attributes(ev), timestamp=_ns(ev.ts)) for ev in events]
    if e.error is not None:
        exception = {"exception.type": e.error.type, "exception.message": e.error.message}
        if e.error.stack:
            exception["exception.stacktrace"] = e.error.stack
        out.append(Event("exception", exception, timestamp=_ns(e.ended_at or e.started_at)))
    return sorted(out, key=lambda event: event.timestamp or 0)


def span_of(
    e: Execution,
    events: list[LifecycleEvent],
    parent_task: str | None,
    resource: Resource,
    scope: InstrumentationScope,
) -> ReadableSpan:
    """One finished execution as a span (see the module docstring for the mapping)."""
    links = []
    if e.retry_of:
        links.append(
            Link(_context(e.trace_id, e.retry_of), {"task.link.type": "retry_of", "task.span_id": e.retry_of})
        )
    description = e.error.message[:_TEXT_MAX] if e.error and e.status == "failed" else None
    return ReadableSpan(
        name=e.task_name or e.task_id, context=_context(e.trace_id, e.span_id),
        parent=_context(e.trace_id, e.parent_span_id) if e.parent_span_id else None, resource=resource,
        attributes=attributes_of(e, parent_task), events=_events_of(e, events), links=links,
        kind=SpanKind.INTERNAL,
        status=Status(_STATUS[e.status], description), start_time=_ns(e.started_at),
        end_time=_ns(e.ended_at or e.started_at), instrumentation_scope=scope,
    )  # fmt: skip


async def spans_for(store: Store, executions: list[Execution]) -> list[tuple[str, ReadableSpan]]:
    """(span_id, span) for each execution, with its events, read trace by trace."""
    resource = _resource()
    from server.app import _version

    scope = InstrumentationScope("task-history", _version())
    wanted = {e.span_id for e in executions}
    out: list[tuple[str, ReadableSpan]] = []
    for trace_id in dict.fromkeys(e.trace_id for e in executions):
        view = await store.trace(trace_id)
        by_span = {e.span_id: e for e in view.executions}
        first = next((e for e in view.executions if e.parent_span_id is None), None)
        for e in view.executions:
            if e.span_id not in wanted:
                continue
            mine = [ev for ev in view.events if ev.span_id == e.span_id]
            if first is not None and e.span_id == first.span_id:
                mine += [ev for ev in view.events if ev.span_id is None or ev.span_id not in by_span]
            parent = by_span.get(e.parent_span_id or "")
            out.append((e.span_id, span_of(e, mine, parent.task_id if parent else None, resource, scope)))
    return out


# ---- the fallback file -----------------------------------------------------------------------


def otlp_json(span: ReadableSpan) -> str:
    """One span as an OTLP/JSON ExportTraceServiceRequest on one line (hex ids, integer enums)."""
    message = MessageToDict(encode_spans([span]), use_integers_for_enums=True)
    for resource_spans in message.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for s in scope_spans.get("spans", []):
                _hex_ids(s)
                for link in s.get("links", []):
                    _hex_ids(link)
    return json.dumps(message, separators=(",", ":"))


def _hex_ids(obj: dict[str, Any]) -> None:
    for key in ("traceId", "spanId", "parentSpanId"):
        if obj.get(key):
            obj[key] = base64.b64decode(obj[key]).hex()


# ---- the export --------------------------------------------------------------------------------


@dataclass
class OtlpReport:
    endpoint: str
    sent: int = 0
    already: int = 0
    running: int = 0
    fallback: Path | None = None
    fallback_spans: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = f"sent {self.sent} spans to {self.endpoint}; {self.already} already there"
        text += f"; {self.running} still running (not exported yet)"
        if self.fallback is not None:
            text += f"; {self.fallback_spans} written to {self.fallback} instead"
        return text


async def export_spans(
    store: Store, endpoint: str, *, since: datetime | None = None, until: datetime | None = None,
    fallback: Path | None = None, timeout: float = 10.0, force: bool = False,
) -> OtlpReport:  # fmt: skip
    report = OtlpReport(endpoint)
    finished: list[Execution] = []
    after: int | None = 0
    while after is not None:
        page = await store.scan_executions(after=after, since=since, until=until)
        report.running += sum(e.status == "running" for e in page.items)
        finished += [e for e in page.items if e.status != "running"]
        after = page.after
    done = set() if force else await store.exported_spans(endpoint, [e.span_id for e in finished])
    report.already = len(done)
    todo = [e for e in finished if e.span_id not in done]
    spans = await spans_for(store, todo)
    exporter = OTLPSpanExporter(endpoint=endpoint, timeout=timeout)
    try:
        for start in range(0, len(spans), BATCH):
            batch = spans[start : start + BATCH]
            result = await asyncio.to_thread(exporter.export, [span for _, span in batch])
            if result is not SpanExportResult.SUCCESS:
                _fall_back(report, spans[start:], fallback)
                break
            await store.mark_exported(endpoint, [span_id for span_id, _ in batch])
            report.sent += len(batch)
    finally:
        exporter.shutdown()
    return report


def _fall_back(report: OtlpReport, rest: list[tuple[str, ReadableSpan]], fallback: Path | None) -> None:
    path = fallback or Path(f"task-history-otlp-{now_utc():%Y%m%dT%H%M%SZ}.ndjson")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        for _, span in rest:
            out.write(otlp_json(span) + "\n")
    report.fallback, report.fallback_spans = path, len(rest)
    report.problems.append(f"{report.endpoint} did not take the spans")


async def export_otlp(store: Store, args: argparse.Namespace) -> int:
    """The CLI's `export --otlp`: exit status 0 when every span went out, 1 when some went to the file."""
    endpoint = endpoint_of(args.otlp or None)
    window = ExecutionFilter(since=args.since, until=args.until)
    fallback = Path(args.fallback) if args.fallback else None
    report = await export_spans(
        store, endpoint, since=window.since, until=window.until, fallback=fallback,
        timeout=args.otlp_timeout, force=args.force,
    )  # fmt: skip
    for problem in report.problems:
        print(
            f"task-history export: warning: {problem}; the spans were written to {report.fallback}",
            file=sys.stderr,
        )
    print(f"export --otlp: {report.summary()}", file=sys.stderr)
    return 1 if report.fallback else 0
