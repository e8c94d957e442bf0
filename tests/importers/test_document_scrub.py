"""A foreign document that says it was scrubbed is scrubbed again: its scrubber is not ours."""

from __future__ import annotations

import json
from pathlib import Path

from seed_files import document

from store import Store
from store.importers import import_paths


async def test_a_document_claiming_scrubbed_is_scrubbed_by_ours(store: Store, tmp_path: Path) -> None:
    doc = document(11)
    doc["meta"] = {"scrubbed": True}
    doc["content"]["text"] = "password=hunter2 sent to bob@example.com"
    path = tmp_path / "claims-scrubbed.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    assert (await import_paths(store, [path])).created["executions"] == 1
    (stored,) = (await store.list_executions(limit=5)).executions
    result = (await store.get(stored.span_id)).execution.result or ""
    assert "hunter2" not in result and "bob@example.com" not in result
