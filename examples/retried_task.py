"""A task that fails and is retried: each attempt is its own execution in one trace, attempt 2
retries attempt 1 (retry_of), and the failures keep their exception type, message and traceback.

    make serve                              # in another terminal
    .venv/bin/python examples/retried_task.py --url http://127.0.0.1:8001/mcp

Then ask the server: tasks_last_failed shows the two timeouts (one error pattern), and
tasks_by_trace(trace_id) the whole story, ending in success."""

from __future__ import annotations

import sys

from _connect import finish, recorder_from_args

from recorder import current_run


def main() -> int:
    rec = recorder_from_args(__doc__.splitlines()[0])
    attempts = 0

    @rec.task("nightly_ingest", attempts=3, type="ingest", retry_on=(TimeoutError,))
    def ingest(source: str) -> int:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise TimeoutError(f"{source} did not answer within 30 s (attempt {attempts})")
        run = current_run()
        if run is not None:
            run.add_files("warehouse/ingest-2025-11-04.parquet")
            run.set_result(f"ingested 1,204 rows from {source}")
        return 1204

    rows = ingest("crm-api")
    print(f"nightly_ingest: {rows} rows after {attempts} attempts ({attempts - 1} failed and were retried)")
    return finish(rec)


if __name__ == "__main__":
    sys.exit(main())
