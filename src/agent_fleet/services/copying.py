"""Move an installation to another store: replay every event into an empty target."""

from collections.abc import Callable

from agent_fleet.domain.errors import InvalidInput
from agent_fleet.domain.events import AnyEvent
from agent_fleet.ports.store import EventStore
from agent_fleet.services.rebuild import RebuildReport, rebuild

BATCH = 500


async def copy_events(
    source: EventStore, target: EventStore, progress: Callable[[int], None] = lambda _: None
) -> RebuildReport:
    """Append the source's events to the target in order, then prove the target by a rebuild.

    Projections on the target are folded by its own append, exactly as if the events
    had happened there; the final rebuild compares them with a fresh replay.
    """
    async for _ in target.iter_events(batch=1):
        raise InvalidInput("--to", "the target store already holds events; use an empty one")
    batch: list[AnyEvent] = []
    copied = 0
    async for recorded in source.iter_events(batch=BATCH):
        batch.append(recorded.event)
        if len(batch) >= BATCH:
            await target.append(batch)
            copied += len(batch)
            batch = []
            progress(copied)
    if batch:
        await target.append(batch)
        copied += len(batch)
        progress(copied)
    return await rebuild(target, write=False)
