"""Typed identifiers, so a task id is never passed where an agent id belongs."""

from typing import NewType

TaskId = NewType("TaskId", str)
AgentId = NewType("AgentId", str)
Lease = NewType("Lease", str)
