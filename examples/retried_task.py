"""A task that fails and is retried: each attempt is its own execution in one trace, attempt 2
retries attempt 1 (retry_of), and the failures keep their exception type, message and traceback.

    make serve                              # in another terminal
    .venv/bin/python examples/retried_task.py --url http://127.0.0.1:8001/mcp

Then ask the server: tasks_last_failed shows the two timeouts (one error pattern), and
tasks_by_trace(trace_id) the whole story, ending in success."""

from __future__ import annotations

import sys

from _connect import finish, recorder_from_args

from recorder import Run, current_run


def main() -> int:
    rec = recorder_from_args(__doc__.splitlines()[0])
    attempts = 0
    last: Run | None = None  # the attempt that ran last

    @rec.task("nightly_ingest", attempts=3, type="ingest", retry_on=(TimeoutError,))
    def ingest(source: str) -> int:
        nonlocal attempts, last
        attempts += 1
        last = current_run()
        if attempts < 3:
            raise TimeoutError(f"{source} did not answer within 30 s (attempt {attempts})")
        if last is not None:
            last.add_files("warehouse/ingest-2025-11-04.parquet")
            last.set_result(f"ingested 1,204 rows from {source}")
        return 1204

    rows = ingest("crm-api")
    status = finish(rec)  # delivered: the run's trace_id is the store's
    trace = last.trace_id if last is not None else None
    print(f"nightly_ingest: {rows} rows after {attempts} attempts ({attempts - 1} failed and were retried), "
          f"trace {trace}")  # fmt: skip
    return status


if __name__ == "__main__":
    sys.exit(main())
