"""Importing seed 002 experience documents from elsewhere: one per file, a list, a folder, JSONL;
marked backfilled, scrubbed when they were not, idempotent, malformed files skipped with their place."""

from __future__ import annotations

import json
from pathlib import Path

from seed_files import document, write_jsonl

from store import Store
from store.importers import import_paths


def write(path: Path, doc: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


async def test_a_folder_of_documents_goes_in_backfilled_and_scrubbed(store: Store, tmp_path: Path) -> None:
    write(tmp_path / "docs" / "a.json", document(1))
    write(tmp_path / "docs" / "nested" / "b.json", [document(2), document(3)])
    report = await import_paths(store, [tmp_path / "docs"])
    assert report.created["executions"] == 3
    detail = await store.get("00000001-e29b-41d4-a716-446655440000")
    e = detail.execution
    assert (e.backfilled, e.scrubbed, e.retrieval.memory_count, e.parents) == (
        True,
        True,
        2,
        ["exp_123", "exp_456"],
    )
    assert e.result is not None and "ops@example.com" not in e.result
    assert (e.trigger, e.duration_ms, e.io.files_written) == ("scheduled", 1042, ["path/to/file.json"])


async def test_jsonl_documents_go_in_and_again_are_duplicates(store: Store, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "experiences.jsonl", [document(4), document(5)])
    assert (await import_paths(store, [path])).created["executions"] == 2
    again = await import_paths(store, [path])
    assert (sum(again.created.values()), again.duplicates) == (0, 2)


async def test_a_broken_document_is_skipped_naming_its_field_and_place(store: Store, tmp_path: Path) -> None:
    failed_without_error = document(6, status="failed")
    wrong_parents = document(7, retrieval={"memory_count": 5})
    path = write_jsonl(tmp_path / "docs.jsonl", [failed_without_error, document(8), wrong_parents])
    report = await import_paths(store, [path])
    assert report.created["executions"] == 1
    assert [(p.where, p.message.split(":")[0]) for p in report.problems] == [
        (f"{path}:1", "error"),
        (f"{path}:3", "parents"),
    ]


async def test_a_record_of_unknown_shape_asks_for_format(store: Store, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mystery.jsonl", [{"hello": "world"}])
    (problem,) = (await import_paths(store, [path])).problems
    assert problem.where == f"{path}:1" and "--format" in problem.message


async def test_forcing_the_wrong_format_reports_every_record(store: Store, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "docs.jsonl", [document(9)])
    (problem,) = (await import_paths(store, [path], fmt="lineage")).problems
    assert problem.message == "the line has no event_type"
