"""The service tier's world: every service of one orchestrator over the in-memory store,
a clock that moves only when told, and a forge that answers from dictionaries.

`InMemoryEventStore` passes the same contract suite as SQLite and PostgreSQL
(tests/contract), so what a service does here is what it does on a real store; only
the forge is a stand-in (`InMemoryForge`, which answers as `ForgejoClient` does: the HTTP
side of that is tested in tests/unit/test_forgejo_client.py and tests/e2e).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, TypeVar

from agent_fleet.domain.events import AnyEvent, type_name
from agent_fleet.domain.ids import AgentId, TaskId
from agent_fleet.domain.policies import RetryPolicy
from agent_fleet.domain.states import ReceiptStatus, TaskState
from agent_fleet.domain.task import Task
from agent_fleet.domain.values import Artifact, Receipt
from agent_fleet.ports.forge import IssueEvent, PullRequestEvent
from agent_fleet.services.agents import RegisterAgent
from agent_fleet.services.comments import CommentOn
from agent_fleet.services.context import Context, FleetOptions
from agent_fleet.services.fleet import Fleet
from agent_fleet.services.tasks import CreateTask
from agent_fleet.store.signal import AsyncioTaskSignal
from agent_fleet.testing import InMemoryEventStore, InMemoryForge, ManualClock

T = TypeVar("T")
REPO = "acme/widgets"

#: Heartbeats every 10 s, three missed make an agent lost; retries back off 30 s, 60 s, …
OPTIONS = FleetOptions(
    heartbeat_interval=timedelta(seconds=10),
    heartbeat_threshold=3,
    retry=RetryPolicy(base_delay=timedelta(seconds=30), max_delay=timedelta(minutes=10)),
    default_max_retries=2,
    default_timeout=timedelta(minutes=5),
)


def run(scenario: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(scenario)


class World:
    """One orchestrator's services; `fleet` is what `agent-fleet serve` assembles."""

    def __init__(
        self,
        *,
        forge: InMemoryForge | None = None,
        options: FleetOptions = OPTIONS,
        allowed_repos: list[str] | None = None,
        comment_on: frozenset[CommentOn] = frozenset(CommentOn),
        store: InMemoryEventStore | None = None,
    ) -> None:
        self.store = store or InMemoryEventStore()
        self.clock = ManualClock()
        self.signal = AsyncioTaskSignal()
        self.forge = forge
        self.observed: list[AnyEvent] = []
        self.ctx = Context(
            store=self.store,
            clock=self.clock,
            signal=self.signal,
            options=options,
            observe=self.observed.extend,
            forge=forge,
        )
        self._assemble = lambda: Fleet.assemble(
            self.ctx,
            allowed_repos=allowed_repos,
            comment_on=comment_on,
            scrub=lambda text: text.replace("sk-secret", "[redacted]"),
        )
        self.fleet = self._assemble()

    def restart(self) -> None:
        """A new orchestrator process on the same store: services start afresh."""
        self.fleet = self._assemble()

    def later(self, seconds: float) -> None:
        self.clock.advance(timedelta(seconds=seconds))

    async def task(self, title: str = "t", caps: tuple[str, ...] = (), **extra: Any) -> Task:
        return await self.fleet.tasks.create(
            CreateTask(
                title=title, prompt=f"prompt of {title}", required_capabilities=caps, **extra
            )
        )

    async def agent(self, agent_id: str, caps: tuple[str, ...] = (), slots: int = 1) -> str:
        registered = await self.fleet.agents.register(
            RegisterAgent(
                agent_id=agent_id,
                agent_type="e2e",
                hostname=None,
                capabilities=caps,
                max_concurrency=slots,
            )
        )
        return registered.registry_token

    async def get(self, task_id: str) -> Task:
        return await self.fleet.tasks.get(task_id)

    async def types(self, stream_id: str) -> list[str]:
        return [type_name(r.event) for r in await self.store.stream_events(stream_id)]

    async def held(self, agent_id: str) -> list[TaskId]:
        return [t.task_id for t in await self.store.held_tasks(AgentId(agent_id))]


# --- a forge's story: an issue, its task, its pull request ----------------------


def issue(action: str = "label_updated", **over: Any) -> IssueEvent:
    fields: dict[str, Any] = {
        "action": action,
        "repo": REPO,
        "number": 12,
        "title": "Export is empty",
        "body": "steps to reproduce",
        "url": f"https://forge.example/{REPO}/issues/12",
        "state": "open",
        "labels": ("agent:code:python",),
        "sender": "carol",
        **over,
    }
    return IssueEvent(**fields)


def pull(task_id: str, action: str = "opened", **over: Any) -> PullRequestEvent:
    fields: dict[str, Any] = {
        "action": action,
        "repo": REPO,
        "number": 13,
        "url": f"https://forge.example/{REPO}/pulls/13",
        "branch": f"task/{task_id}",
        "merged": False,
        "state": "open",
        "sender": "carol",
        "head_repo": REPO,
        **over,
    }
    return PullRequestEvent(**fields)


async def under_review(world: World) -> str:
    """An issue's task, done by an agent whose receipt names PR #13."""
    made = await world.fleet.webhooks.handle(issue(), "d-1")
    task_id = str(made.task_id)
    await world.agent("w", caps=("code:python",))
    handout = await world.fleet.dequeue.dequeue(
        await world.fleet.agents.get("w"), None, timedelta(0)
    )
    assert handout is not None
    assert world.forge is not None
    world.forge.pull(REPO, 13, f"task/{task_id}")
    receipt = Receipt(
        task_id=TaskId(task_id),
        agent_id=AgentId("w"),
        lease=handout.lease,
        status=ReceiptStatus.COMPLETED,
        summary="fixed",
        artifacts=(Artifact(type="pr", url=f"https://forge.example/{REPO}/pulls/13"),),
    )
    assert (await world.fleet.tasks.complete(task_id, receipt)).state is TaskState.REVIEW_PENDING
    return task_id
