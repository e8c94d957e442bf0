"""The outbox and its spool file, and how ops name executions before their span_id is known."""

from __future__ import annotations

from pathlib import Path

import pytest

from recorder.ops import Op, Unresolved, ref_arg
from recorder.outbox import Outbox


def test_an_op_swaps_refs_for_span_ids_once_they_are_known() -> None:
    op = Op("finish", {"span_id": ref_arg("r-1"), "status": "success"})
    with pytest.raises(Unresolved):
        op.resolved({})
    assert op.resolved({"r-1": "span-1"})["span_id"] == "span-1"
    op.bind({"r-1": "span-1"})
    assert op.args["span_id"] == "span-1" and Op.from_line(op.to_line()).args == op.args


def test_the_spool_mirrors_pending_ops_and_empties_when_they_are_delivered(tmp_path: Path) -> None:
    spool = tmp_path / "spool.jsonl"
    outbox = Outbox(10, spool)
    assert outbox.open() == []
    first, second = Op("event", {"task_id": "a"}), Op("event", {"task_id": "b"})
    outbox.put(first)
    outbox.put(second)
    assert len(spool.read_text(encoding="utf-8").splitlines()) == 2
    outbox.done(first)
    assert len(spool.read_text(encoding="utf-8").splitlines()) == 2  # kept until the outbox is empty
    outbox.done(second)
    assert spool.read_text(encoding="utf-8") == ""
    outbox.close()


def test_a_new_outbox_takes_over_a_spool_and_skips_a_line_cut_short(tmp_path: Path) -> None:
    spool = tmp_path / "spool.jsonl"
    op = Op("event", {"task_id": "a"})
    spool.write_text(op.to_line() + "\n" + '{"kind": "event", "args": {"task_', encoding="utf-8")
    outbox = Outbox(10, spool)
    (loaded,) = outbox.open()
    assert (loaded.op_id, len(outbox)) == (op.op_id, 1)
    outbox.close()


def test_a_full_outbox_refuses_and_counts() -> None:
    outbox = Outbox(1)
    assert outbox.put(Op("event", {})) and not outbox.put(Op("event", {}))
    assert (len(outbox), outbox.dropped) == (1, 1)
