"""The derived idempotency key is the one MCP_INTEGRATION.md spells out, so a scheduler computing it
by hand matches: hex sha256 of `task_id|scheduled_at (UTC, microseconds, Z)|attempt`."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

from store import Store
from store.models import StartRequest

SLOT = datetime(2025, 11, 4, 19, 0, tzinfo=timezone(timedelta(hours=1)))  # 18:00 UTC


async def test_a_scheduled_start_gets_the_documented_key(store: Store) -> None:
    started = await store.start(StartRequest(task_id="daily_reflection", scheduled_at=SLOT))
    expected = hashlib.sha256(b"daily_reflection|2025-11-04T18:00:00.000000Z|1").hexdigest()
    assert started.execution.idempotency_key == expected
    again = await store.start(StartRequest(task_id="daily_reflection", idempotency_key=expected))
    assert again.duplicate and again.execution.span_id == started.execution.span_id
