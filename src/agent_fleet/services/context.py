"""What every service needs: the store, the clock, the wake-up signal and the options."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from agent_fleet.domain.budget import DailyBudgets
from agent_fleet.domain.events import AnyEvent
from agent_fleet.domain.policies import RetryPolicy
from agent_fleet.ports.clock import Clock
from agent_fleet.ports.forge import Forge
from agent_fleet.ports.signal import TaskSignal
from agent_fleet.ports.store import EventStore


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetOptions:
    heartbeat_interval: timedelta = timedelta(seconds=30)
    heartbeat_threshold: int = 3
    default_timeout: timedelta = timedelta(hours=1)
    default_max_retries: int = 3
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    long_poll_max: timedelta = timedelta(seconds=30)
    sweep_interval: timedelta = timedelta(seconds=1)
    log_limit_bytes: int = 10 * 1024 * 1024
    dispatch_interval: timedelta = timedelta(seconds=10)
    ssh_poll_interval: timedelta = timedelta(seconds=2)
    keep_failed_workspaces_days: int = 7
    keep_completed_workspaces: timedelta = timedelta(hours=24)
    reconcile_interval: timedelta = timedelta(minutes=5)
    comment_interval: timedelta = timedelta(seconds=2)
    max_review_rounds: int = 3
    #: USD each repository may spend per UTC day before new tasks are held.
    daily_budgets: DailyBudgets = field(default_factory=DailyBudgets)

    @property
    def heartbeat_timeout(self) -> timedelta:
        return self.heartbeat_interval * self.heartbeat_threshold


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    store: EventStore
    clock: Clock
    signal: TaskSignal
    options: FleetOptions = field(default_factory=FleetOptions)
    #: Told of every appended event, after its commit (metrics); must not raise.
    observe: Callable[[Sequence[AnyEvent]], None] = lambda _events: None
    #: The code forge's API, when configured (Forgejo url and token).
    forge: Forge | None = None


async def append(ctx: Context, events: Sequence[AnyEvent]) -> None:
    """Append through the store, then tell the observer: the one way services write."""
    await ctx.store.append(events)
    ctx.observe(events)
