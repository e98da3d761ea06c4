"""Test doubles held to the ports' contracts: the in-memory event store and clocks you steer.

`InMemoryEventStore` (`store/memory.py`) runs the same contract suite as the SQL stores
(`tests/contract/`), so a service test that passes on it means what it says.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from agent_fleet.store.memory import InMemoryEventStore

__all__ = ["EPOCH", "FixedClock", "InMemoryEventStore", "ManualClock"]

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class ManualClock:
    """A clock that moves only when the test says so (`advance`); starts at 2026-01-01 UTC."""

    def __init__(self, start: datetime = EPOCH) -> None:
        if start.tzinfo is None:
            raise ValueError(f"naive datetime {start}: the fleet keeps time in UTC")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError(f"a clock does not run backwards ({delta})")
        self._now += delta
        return self._now


@dataclass(frozen=True, slots=True)
class FixedClock:
    """A clock that always says the same time."""

    at: datetime = EPOCH

    def now(self) -> datetime:
        return self.at
