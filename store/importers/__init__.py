"""Backfill: history that already sits in files goes into the store (`task-history import`).

Formats (store.importers.sources tells them apart by themselves):

* seed 000 lineage logs, one event per line, daily archives too (store.importers.lineage);
* seed 004 `task-breakdown.json` (store.importers.breakdown);
* seed 002 experience documents, one per file, a JSON list, a folder or JSONL (store.importers.documents);
* this store's own export and prune-archive files (store.export).

Every record gets a key derived from its content or identity, so importing the same files again
creates nothing new; a malformed line or file is reported with its location and skipped."""

from store.importers.items import Item, Problem
from store.importers.runner import ImportReport, Progress, import_paths
from store.importers.sources import FORMATS, Format

__all__ = ["FORMATS", "Format", "ImportReport", "Item", "Problem", "Progress", "import_paths"]
