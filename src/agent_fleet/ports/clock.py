"""The clock services read `now` from (tests steer one: `agent_fleet.testing`)."""

from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...
