"""Structured logs (structlog): console for people, JSON for machines."""

import asyncio
import logging
import re

import structlog
from structlog.typing import EventDict

_SECRET_KEYS = re.compile(r"token|secret|password|authorization|lease", re.I)


class Redactor:
    """A log processor: secret-looking fields and known secret values never reach a log."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = [s for s in secrets if len(s) >= 8]

    def __call__(self, _logger: object, _name: str, event: EventDict) -> EventDict:
        for key, value in list(event.items()):
            if _SECRET_KEYS.search(key):
                event[key] = "***"
            elif isinstance(value, str):
                for secret in self.secrets:
                    value = value.replace(secret, "***")
                event[key] = value
        return event


def configure_logging(
    fmt: str = "console", level: int = logging.INFO, secrets: list[str] | None = None
) -> None:
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            Redactor(secrets or []),
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=level, format="%(message)s")
    # asyncssh logs every channel and command at INFO: only its problems belong in ours.
    logging.getLogger("asyncssh").setLevel(max(level, logging.WARNING))


class Tally:
    """Counts a recurring event and logs it at most once per `every` seconds: the first at
    once, then one line with how many happened since. A flood costs a line per period.

    Call `add` from the event loop's thread (it schedules the line on the running loop).
    """

    def __init__(self, event: str, every: float = 10.0, **fields: object) -> None:
        self.event = event
        self.every = every
        self.fields = fields
        self._count = 0
        self._last = float("-inf")
        self._pending: asyncio.TimerHandle | None = None
        self._log = structlog.get_logger("agent_fleet.http")

    def add(self) -> None:
        self._count += 1
        if self._pending is None:
            loop = asyncio.get_running_loop()
            delay = max(0.0, self._last + self.every - loop.time())
            self._pending = loop.call_later(delay, self._flush, loop)

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._pending = None
        self._last = loop.time()
        count, self._count = self._count, 0
        self._log.warning(self.event, count=count, per_secs=self.every, **self.fields)
