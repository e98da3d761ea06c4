"""Time-based policies: retry backoff and timeouts (`now` is a parameter)."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from agent_fleet.domain.budget import TaskBudget
from agent_fleet.domain.states import NEVER_AUTO_RETRIED, FailureReason


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Exponential backoff: base × 2^attempt, capped at `max_delay`; no automatic retry
    for a task that has spent its `budget`."""

    base_delay: timedelta = timedelta(seconds=10)
    max_delay: timedelta = timedelta(minutes=10)
    budget: TaskBudget = field(default_factory=TaskBudget)

    def delay(self, attempt: int) -> timedelta:
        # Cap the exponent first: 2**attempt overflows timedelta long before it matters.
        factor: int = 2 ** min(max(attempt, 0), 30)
        return min(self.base_delay * factor, self.max_delay)


def should_auto_retry(counted: int, max_retries: int, reason: FailureReason) -> bool:
    """A closed PR is a person's decision, a spent budget an operator's: neither retries alone.

    `counted` is the task's attempts that count (`Task.counted_attempts`): one the
    orchestrator's own crash ended is not held against the task."""
    return reason not in NEVER_AUTO_RETRIED and counted < max_retries


def retry_due_at(
    counted: int, max_retries: int, reason: FailureReason, now: datetime, policy: RetryPolicy
) -> datetime | None:
    if not should_auto_retry(counted, max_retries, reason):
        return None
    return now + policy.delay(counted)


def is_timed_out(assigned_at: datetime | None, timeout: timedelta, now: datetime) -> bool:
    return assigned_at is not None and now - assigned_at > timeout
