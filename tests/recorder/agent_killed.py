"""An agent that records itself and then hangs until it is killed: `python agent_killed.py URL|DB`.

It starts one execution, makes sure the start reached the store, says `started <span_id>` on
stdout, and blocks on stdin. The test kills it with SIGKILL: no finish is ever sent."""

from __future__ import annotations

import sys

from recorder import Recorder


def main(target: str) -> None:
    rec = Recorder.remote(target) if target.startswith("http") else Recorder.direct(target)
    with rec.execution("killed-agent", name="an agent that never finishes", type="agent") as run:
        run.event("worker_spawned", worker_id="helper-1")
        if not rec.flush(20):
            print("not delivered", flush=True)
            return
        print(f"started {run.span_id}", flush=True)
        sys.stdin.readline()  # killed here


if __name__ == "__main__":
    main(sys.argv[1])
