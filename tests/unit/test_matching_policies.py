"""Routing and time policies."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from agent_fleet.domain.matching import Capacity, can_serve, least_loaded, next_task_for
from agent_fleet.domain.policies import RetryPolicy, is_timed_out, should_auto_retry
from agent_fleet.domain.states import FailureReason

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class QueuedTask:
    task_id: str
    priority: int
    created_at: datetime
    required_capabilities: tuple[str, ...]


def slot(agent: str, running: int, max_c: int) -> Capacity:
    return Capacity(agent_id=agent, running=running, max_concurrency=max_c)


def test_capabilities_must_all_be_present() -> None:
    assert can_serve(["a", "b"], ["a"])
    assert can_serve(["a"], [])
    assert not can_serve(["a"], ["a", "b"])


def test_the_least_loaded_agent_with_room_goes_first() -> None:
    slots = [
        slot("busy", 1, 2),  # load 0.5
        slot("idle-b", 0, 1),  # load 0.0
        slot("idle-a", 0, 9),  # load 0.0, a lower id
        slot("full", 3, 3),
    ]
    assert [s.agent_id for s in least_loaded(slots)] == ["idle-a", "idle-b", "busy"]
    assert least_loaded([slots[3]]) == []


def test_priority_then_age() -> None:
    queue = [
        QueuedTask(task_id="old", priority=0, created_at=T0, required_capabilities=()),
        QueuedTask(
            task_id="urgent", priority=9, created_at=T0 + timedelta(1), required_capabilities=()
        ),
        QueuedTask(task_id="rust", priority=99, created_at=T0, required_capabilities=("rust",)),
    ]
    chosen = next_task_for(["py"], queue)
    assert chosen is not None and chosen.task_id == "urgent"


def test_backoff_doubles_and_caps() -> None:
    policy = RetryPolicy(base_delay=timedelta(seconds=10), max_delay=timedelta(seconds=35))
    assert [policy.delay(n).total_seconds() for n in range(4)] == [10, 20, 35, 35]
    assert policy.delay(10_000) == timedelta(seconds=35)


def test_retry_timeout_and_staleness() -> None:
    assert should_auto_retry(1, 2, FailureReason.ERROR)
    assert not should_auto_retry(2, 2, FailureReason.ERROR)
    assert not should_auto_retry(0, 5, FailureReason.PR_CLOSED)
    assert not is_timed_out(T0, timedelta(seconds=60), T0 + timedelta(seconds=60))
    assert is_timed_out(T0, timedelta(seconds=60), T0 + timedelta(seconds=61))
    assert not is_timed_out(None, timedelta(seconds=1), T0)
