"""A scheduled task that succeeds: the daily reflection of seed 002, recorded with its schedule slot,
the memories it used, the file it wrote and its token usage.

    make serve                              # in another terminal
    .venv/bin/python examples/scheduled_task.py --url http://127.0.0.1:8001/mcp

Run it twice within the same hour (or with the same `--slot 2025-11-04T18:00:00Z`): the second run is
recognized as the same scheduled slot (idempotency key = sha256(task_id + scheduled_at + attempt))
and recorded once; both print the trace of that one run."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from _connect import OPTIONS, finish, recorder_from_args


def reflect(memories: list[str]) -> str:
    return f"Reflected on {len(memories)} memories: a calm day, two follow-ups for tomorrow."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slot", type=datetime.fromisoformat, help="the schedule slot (default: this hour)")
    rec = recorder_from_args(__doc__.splitlines()[0], parser)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)  # the hourly schedule's slot
    slot = (OPTIONS.slot or now).astimezone(UTC)
    memories = ["exp_123", "exp_456"]
    with rec.execution(
        "daily_reflection", name="Daily Self-Reflection", type="reflection", trigger="scheduled",
        scheduled_at=slot, parents=memories,
        retrieval={"memory_count": len(memories), "query": "what happened today", "latency_ms": 28,
                   "source": ["experiences", "beliefs"]},
    ) as run:  # fmt: skip
        text = reflect(memories)
        run.add_files(f"persona_space/reflections/{slot:%Y-%m-%d}.md")
        run.add_usage(input_tokens=812, output_tokens=164)
        run.set_result(text)
    status = finish(rec)  # delivered: run.trace_id is the store's (the first run's, for a repeated slot)
    again = " (this slot was already recorded)" if run.duplicate else ""
    print(f"recorded daily_reflection for {slot:%Y-%m-%d %H:00}Z: {run.status}, trace {run.trace_id}{again}")
    return status


if __name__ == "__main__":
    sys.exit(main())
