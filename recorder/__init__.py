"""The agent-side recorder: a small Python API that records an agent's or scheduler's own
executions and lifecycle events in task-history, directly in a database file or through a running
server over MCP (see MCP_INTEGRATION.md, "Recording from Python: the recorder")."""

from recorder.courier import Delivery
from recorder.recorder import Recorder
from recorder.run import Run, current_run

__all__ = ["Delivery", "Recorder", "Run", "current_run"]
