"""The lifecycle's one table: the state each event leaves a task in (docs/events.md).

`task.evolve` folds a task's state by it, and reports read histories by it
(`domain/insight.py`), so the two cannot disagree.
"""

from typing import assert_never

from agent_fleet.domain.events import (
    TaskAgentLost,
    TaskAssigned,
    TaskCancelled,
    TaskCompleted,
    TaskCreated,
    TaskEvent,
    TaskFailed,
    TaskHeld,
    TaskHoldLifted,
    TaskProgress,
    TaskPrUpdated,
    TaskReleased,
    TaskRerouted,
    TaskRetried,
    TaskReviewPending,
    TaskStarted,
)
from agent_fleet.domain.states import TaskState


def state_after(state: TaskState, event: TaskEvent) -> TaskState:
    """The state an event leaves a task in: what `task.evolve` sets (docs/events.md)."""
    match event:
        case TaskCreated() | TaskRerouted() | TaskRetried() | TaskReleased():
            return TaskState.CREATED
        case TaskAssigned():
            return TaskState.ASSIGNED
        case TaskStarted():
            return TaskState.RUNNING
        case TaskReviewPending():
            return TaskState.REVIEW_PENDING
        case TaskCompleted():
            return TaskState.COMPLETED
        case TaskFailed():
            return TaskState.FAILED
        case TaskAgentLost():
            return TaskState.AGENT_LOST
        case TaskCancelled():
            return TaskState.CANCELLED
        case TaskProgress() | TaskPrUpdated() | TaskHeld() | TaskHoldLifted():
            return state
        case _:
            assert_never(event)
