"""What every example shares: where to record (a running server, or a database file) and a
closing line that says whether everything was delivered."""

from __future__ import annotations

import argparse
import os
import sys

from recorder import Recorder

DEFAULT_URL = "http://127.0.0.1:8001/mcp"
OPTIONS = argparse.Namespace()  # the parsed command line, for options an example added


def recorder_from_args(description: str, parser: argparse.ArgumentParser | None = None) -> Recorder:
    """The recorder the command line asks for; `parser` may add options of the example's own."""
    parser = parser or argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--url", default=DEFAULT_URL, help=f"task-history server (default {DEFAULT_URL}, `make serve`)"
    )
    parser.add_argument(
        "--token", default=os.environ.get("TASK_HISTORY_TOKEN"), help="bearer token, if the server has one"
    )
    parser.add_argument("--db", help="record straight into this database file instead of through a server")
    args = parser.parse_args(namespace=OPTIONS)
    if args.db:
        return Recorder.direct(args.db, actor="examples")
    return Recorder.remote(args.url, token=args.token or None, actor="examples")


def finish(rec: Recorder) -> int:
    """Deliver what is left; exit status 0 when the store has everything."""
    delivered = rec.flush(timeout=15)
    rec.close(timeout=1)
    if not delivered:
        print(f"{rec.pending} records could not be delivered (is the server running?)", file=sys.stderr)
        return 1
    if rec.refused:
        print("the store refused: " + "; ".join(rec.refused), file=sys.stderr)
        return 1
    return 0
