"""Which `[[hosts]]` answer: a host that fails is left alone for a while (exponential
backoff), and how long it has been down decides when its tasks are given up on."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

log = structlog.get_logger("agent_fleet.dispatch")
BACKOFF_FIRST_SECS = 2.0
BACKOFF_MAX_SECS = 300.0


@dataclass(slots=True)
class _Health:
    failures: int = 0
    down_since: datetime | None = None
    retry_at: datetime | None = None


class HostHealth:
    def __init__(self, host_ids: Iterable[str]) -> None:
        self._hosts = {host_id: _Health() for host_id in host_ids}

    @property
    def host_ids(self) -> list[str]:
        return list(self._hosts)

    def is_up(self, host_id: str, now: datetime) -> bool:
        """Up, or down long enough that it is worth asking again."""
        retry_at = self._hosts[host_id].retry_at
        return retry_at is None or now >= retry_at

    def failed(self, host_id: str, why: str, now: datetime) -> None:
        health = self._hosts[host_id]
        health.failures += 1
        health.down_since = health.down_since or now
        wait = min(BACKOFF_FIRST_SECS * 2 ** (health.failures - 1), BACKOFF_MAX_SECS)
        health.retry_at = now + timedelta(seconds=wait)
        log.warning("host down", host_id=host_id, error=why, retry_in_secs=wait)

    def answered(self, host_id: str) -> None:
        health = self._hosts[host_id]
        if health.failures:
            log.info("host back", host_id=host_id)
        health.failures, health.down_since, health.retry_at = 0, None, None

    def down_for(self, host_id: str, now: datetime) -> timedelta | None:
        """How long the host has not answered; None while it answers."""
        since = self._hosts[host_id].down_since
        return None if since is None else now - since
