"""Small statistics for reports: nearest-rank quantiles and time buckets (pure)."""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

#: Bucket sizes by window length: fine for the last hours, coarse for weeks.
FIVE_MINUTES = timedelta(minutes=5)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def nearest_rank(ordered: Sequence[float], percent: float) -> float | None:
    """The nearest-rank percentile of sorted values: the smallest value with at least
    `percent`% of the values at or below it. The median of 1, 2, 3, 4 is 2."""
    if not ordered:
        return None
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True, kw_only=True)
class Quantiles:
    """p50 and p95 of a set of durations in seconds (None when there were none)."""

    count: int
    p50: float | None
    p95: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> "Quantiles":
        ordered = sorted(values)
        return cls(count=len(ordered), p50=nearest_rank(ordered, 50), p95=nearest_rank(ordered, 95))


def bucket_size(length: timedelta) -> timedelta:
    if length <= timedelta(hours=3):
        return FIVE_MINUTES
    if length <= timedelta(days=3):
        return HOUR
    return DAY


def floor_to(moment: datetime, size: timedelta) -> datetime:
    """The start of the `size`-long bucket (counted from the UTC epoch) holding `moment`."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    steps = (moment - epoch) // size
    return epoch + steps * size


def bucket_starts(since: datetime, until: datetime, size: timedelta) -> list[datetime]:
    """Aligned buckets covering [since, until); the first may begin before `since`."""
    starts, start = [], floor_to(since, size)
    while start < until:
        starts.append(start)
        start += size
    return starts


def ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None
