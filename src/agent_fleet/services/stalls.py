"""When each followed ssh_cli run last showed progress, and whether it has stalled."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, TypeVar

K = TypeVar("K")


@dataclass(slots=True)
class ProgressClock(Generic[K]):
    """Progress as the dispatcher sees it: new log output its adapter counts (retry
    notices do not). A run first seen (a launch, or a restart of ours) starts its clock
    then, so a restart never stalls a run at once."""

    _last: dict[K, datetime] = field(default_factory=dict)

    def saw(self, key: K, now: datetime, *, progressed: bool) -> None:
        if progressed or key not in self._last:
            self._last[key] = now

    def idle_for(self, key: K, now: datetime) -> timedelta:
        return now - self._last.get(key, now)

    def is_stalled(self, key: K, now: datetime, limit: timedelta | None) -> bool:
        return limit is not None and self.idle_for(key, now) >= limit

    def forget(self, key: K) -> None:
        self._last.pop(key, None)
