"""`task-history export --otlp`: executions reach a real OTLP/HTTP receiver as spans with the ids,
parentage, retry links, status, attributes and events of the records; an export of the same range
sends nothing twice; an unreachable endpoint is a warning and a fallback NDJSON file."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from otlp_receiver import otlp_receiver

from server.cli import main
from server.otlp import endpoint_of, export_spans, span_id_of, trace_id_of
from store import InvalidInput, Store
from store.models import ErrorInput, EventRequest, FinishRequest, StartRequest, Usage

T0 = datetime(2025, 11, 4, 18, 29, 12, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def fill(store: Store) -> dict[str, str]:
    """A task whose first attempt fails and second succeeds with a worker child, and a running one."""
    created = await store.log_event(EventRequest(event_type="task_created", task_id="scan", ts=at(0)))
    first = (await store.start(StartRequest(task_id="scan", task_name="Security scan", started_at=at(1),
                                            trace_id=created.event.trace_id))).execution  # fmt: skip
    await store.log_event(
        EventRequest(event_type="myorg.checkpoint", task_id="scan", ts=at(1.5), data={"step": 1})
    )
    error = ErrorInput(
        type="TimeoutError", message="scanner timed out", stack="Traceback\nTimeoutError: scanner timed out"
    )
    await store.finish(FinishRequest(span_id=first.span_id, status="failed", ended_at=at(2), error=error))
    retry = (await store.start(StartRequest(task_id="scan", task_name="Security scan", retry_of=first.span_id,
                                            started_at=at(3)))).execution  # fmt: skip
    child = (await store.start(StartRequest(task_id="scan", task_name="scan worker", started_at=at(3.5),
                                            parent_span_id=retry.span_id))).execution  # fmt: skip
    await store.finish(FinishRequest(span_id=child.span_id, status="partial", ended_at=at(4)))
    await store.finish(FinishRequest(span_id=retry.span_id, status="success", ended_at=at(5), result="clean",
                                     usage=Usage(input_tokens=120, output_tokens=30)))  # fmt: skip
    running = (await store.start(StartRequest(task_id="long", started_at=at(6)))).execution
    return {
        "first": first.span_id, "retry": retry.span_id, "child": child.span_id, "running": running.span_id,
        "trace": first.trace_id,
    }  # fmt: skip


def attrs(span: object) -> dict[str, object]:
    out: dict[str, object] = {}
    for kv in span.attributes:  # type: ignore[attr-defined]
        which = kv.value.WhichOneof("value")
        value = getattr(kv.value, which)
        out[kv.key] = [v.string_value for v in value.values] if which == "array_value" else value
    return out


def test_ids_come_from_the_uuids_trace_whole_and_span_the_last_64_bits() -> None:
    value = "550e8400-e29b-41d4-a716-446655440000"
    assert trace_id_of(value) == 0x550E8400E29B41D4A716446655440000
    assert span_id_of(value) == 0xA716446655440000


def test_the_endpoint_comes_from_the_flag_or_the_standard_variables() -> None:
    assert endpoint_of("http://c:4318", {}) == "http://c:4318/v1/traces"
    assert (
        endpoint_of(None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://col:4318/"}) == "http://col:4318/v1/traces"
    )
    assert endpoint_of(None, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t/x"}) == "http://t/x"
    assert endpoint_of(None, {}) == "http://localhost:4318/v1/traces"


@pytest.mark.parametrize(
    ("given", "environ", "names"),
    [
        ("/tmp/spans.json", {}, "otlp"),
        ("localhost:4318", {}, "otlp"),
        (None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        (None, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "ftp://c/x"}, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
    ],
)
def test_an_endpoint_that_is_no_http_url_is_refused_naming_where_it_came_from(
    given: str | None, environ: dict[str, str], names: str
) -> None:
    with pytest.raises(InvalidInput, match="is not an http:// or https:// URL") as caught:
        endpoint_of(given, environ)
    assert caught.value.field == names


def filled_file(db: Path) -> Path:
    """A SQLite file holding `fill`'s history, for the CLI tests."""

    async def seed() -> None:
        async with await Store.open(str(db)) as store:
            await fill(store)

    asyncio.run(seed())
    return db


def test_the_cli_refuses_a_file_path_for_otlp_before_sending_or_writing_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = filled_file(tmp_path / "h.db")
    monkeypatch.chdir(tmp_path)
    code = main(["export", "--otlp", str(tmp_path / "spans.json"), "--db", str(db)])
    err = capsys.readouterr().err
    assert code == 2 and "--otlp:" in err and "is not an http:// or https:// URL" in err
    assert not list(tmp_path.glob("task-history-otlp-*")), "no fallback file: nothing was tried"
    assert not (tmp_path / "spans.json").exists()


async def test_the_receiver_gets_spans_with_parentage_links_status_attributes_and_events(
    store: Store,
) -> None:
    ids = await fill(store)
    with otlp_receiver() as (url, received):
        report = await export_spans(store, endpoint_of(url, {}))
    assert (report.sent, report.running, report.fallback) == (3, 1, None)
    spans = {s.span_id: s for s in received.spans}
    first, retry, child = (spans[span_id_of(ids[k]).to_bytes(8, "big")] for k in ("first", "retry", "child"))
    trace = trace_id_of(ids["trace"]).to_bytes(16, "big")
    assert {first.trace_id, retry.trace_id, child.trace_id} == {trace}
    assert child.parent_span_id == retry.span_id and not retry.parent_span_id and not first.parent_span_id
    (link,) = retry.links
    assert (link.span_id, link.trace_id) == (first.span_id, trace)
    assert attrs(link)["task.link.type"] == "retry_of"
    assert (first.status.code, first.status.message) == (2, "scanner timed out")  # ERROR
    assert (retry.status.code, child.status.code) == (1, 0)  # OK, UNSET (partial)
    a = attrs(retry)
    assert (a["task.id"], a["task.type"], a["task.title"], a["task.status"], a["task.attempt"]) == (
        "scan", "task", "Security scan", "success", 2,
    )  # fmt: skip
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"], a["task.span_id"]) == (
        120,
        30,
        ids["retry"],
    )
    assert attrs(child)["task.parent_id"] == "scan"
    assert attrs(first)["error.type"] == "TimeoutError"
    assert [e.name for e in first.events] == ["task_created", "myorg.checkpoint", "exception"]
    assert attrs(first.events[-1])["exception.stacktrace"].endswith("scanner timed out")  # type: ignore[union-attr]
    assert (retry.start_time_unix_nano, retry.end_time_unix_nano) == (
        int(at(3).timestamp()) * 10**9, int(at(5).timestamp()) * 10**9,
    )  # fmt: skip
    assert attrs(received.resources[0])["service.name"] == "task-history"


async def test_exporting_the_same_range_again_sends_nothing_new(store: Store) -> None:
    await fill(store)
    with otlp_receiver() as (url, received):
        endpoint = endpoint_of(url, {})
        await export_spans(store, endpoint)
        again = await export_spans(store, endpoint)
        assert (again.sent, again.already, len(received.spans)) == (0, 3, 3)
        forced = await export_spans(store, endpoint, force=True)
        assert (forced.sent, len(received.spans)) == (3, 6)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_an_unreachable_endpoint_falls_back_to_an_ndjson_file_of_the_same_spans(
    store: Store, tmp_path: Path
) -> None:
    ids = await fill(store)
    fallback = tmp_path / "spans.ndjson"
    report = await export_spans(
        store, f"http://127.0.0.1:{_closed_port()}/v1/traces", fallback=fallback, timeout=1
    )
    assert (report.sent, report.fallback, report.fallback_spans) == (0, fallback, 3)
    lines = [json.loads(line) for line in fallback.read_text(encoding="utf-8").splitlines()]
    spans = [
        s for line in lines for r in line["resourceSpans"] for sc in r["scopeSpans"] for s in sc["spans"]
    ]
    assert {s["spanId"] for s in spans} == {f"{span_id_of(ids[k]):016x}" for k in ("first", "retry", "child")}
    assert {s["traceId"] for s in spans} == {uuid.UUID(ids["trace"]).hex}
    assert {s["kind"] for s in spans} == {1}  # integer enums, as OTLP/JSON wants
    with otlp_receiver() as (url, received):  # nothing was marked exported: they go out next time
        later = await export_spans(store, endpoint_of(url, {}))
    assert (later.sent, len(received.spans)) == (3, 3)


def test_the_cli_exports_to_the_receiver_and_exits_1_when_it_had_to_fall_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = filled_file(tmp_path / "h.db")
    with otlp_receiver() as (url, received):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
        assert main(["export", "--otlp", "--db", str(db), "--since", "2025-11-04T18:29:13Z"]) == 0
        assert len(received.spans) == 3
    assert "sent 3 spans" in capsys.readouterr().err
    fallback = tmp_path / "fallback.ndjson"
    dead = f"http://127.0.0.1:{_closed_port()}"
    code = main(
        [
            "export",
            "--otlp",
            dead,
            "--db",
            str(db),
            "--force",
            "--fallback",
            str(fallback),
            "--otlp-timeout",
            "1",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "warning" in err and len(fallback.read_text(encoding="utf-8").splitlines()) == 3


@pytest.mark.parametrize("value", ["not-a-uuid", "task-001:attempt-2"])
def test_an_id_that_is_no_uuid_still_maps_to_stable_nonzero_otel_ids(value: str) -> None:
    assert trace_id_of(value) == trace_id_of(value) != 0
    assert 0 < span_id_of(value) < 1 << 64
    assert trace_id_of(value) != trace_id_of(value + "x")
