"""`/metrics` spend counters: tokens and USD by agent type, over a fixed label set (built-in
and configured agent types, and `other`), whatever names agents register with."""

import re
from datetime import timedelta

import pytest
from prometheus_client import generate_latest

from agent_fleet.adapters.catalog import BUILT_IN
from agent_fleet.api.metrics import FleetMetrics
from agent_fleet.domain.ids import AgentId
from agent_fleet.domain.states import ReceiptStatus
from agent_fleet.domain.values import Receipt, Usage
from agent_fleet.services.agents import RegisterAgent
from agent_fleet.services.context import Context
from agent_fleet.services.fleet import Fleet
from agent_fleet.services.tasks import CreateTask
from agent_fleet.store.signal import AsyncioTaskSignal
from agent_fleet.testing import InMemoryEventStore, ManualClock

pytestmark = pytest.mark.anyio


def samples(metrics: FleetMetrics, name: str) -> dict[str, float]:
    text = generate_latest(metrics.registry).decode()
    found = re.findall(rf'^{name}\{{agent_type="([^"]*)"\}} (\S+)$', text, re.MULTILINE)
    return {label: float(value) for label, value in found}


async def test_spend_is_counted_by_agent_type_with_a_fixed_label_set() -> None:
    metrics = FleetMetrics()
    metrics.allow_agent_types([*BUILT_IN, "my-agent"])  # as bootstrap does
    ctx = Context(
        store=InMemoryEventStore(),
        clock=ManualClock(),
        signal=AsyncioTaskSignal(),
        observe=metrics.observe,
    )
    fleet = Fleet.assemble(ctx)
    agents = {"c1": "claude", "m1": "my-agent", "r1": 'rogue"}<script>'}
    for agent_id, agent_type in agents.items():
        await fleet.agents.register(
            RegisterAgent(
                agent_id=agent_id,
                agent_type=agent_type,
                hostname=None,
                capabilities=(),
                max_concurrency=1,
            )
        )
    for n, (agent_id, usage) in enumerate(
        [
            ("c1", Usage(tokens=1000, cost_usd=0.25)),
            ("m1", Usage(input_tokens=70, output_tokens=30)),
            ("r1", Usage(tokens=5, cost_usd=0.5)),
            ("c1", Usage(tokens=500, cost_usd=0.25)),
        ]
    ):
        await fleet.tasks.create(CreateTask(title=f"t{n}", prompt="p", required_capabilities=()))
        handout = await fleet.dequeue.dequeue(await fleet.agents.get(agent_id), None, timedelta(0))
        assert handout is not None
        receipt = Receipt(
            task_id=handout.task.task_id,
            agent_id=AgentId(agent_id),
            lease=handout.lease,
            status=ReceiptStatus.COMPLETED,
            usage=usage,
        )
        await fleet.tasks.complete(handout.task.task_id, receipt)
    await metrics.refresh(fleet)

    tokens = samples(metrics, "agent_fleet_tokens_total")
    cost = samples(metrics, "agent_fleet_cost_usd_total")
    assert set(tokens) == {
        "codex",
        "codex-cli",
        "claude",
        "claude-code",
        "aider",
        "my-agent",
        "other",
    }
    assert set(cost) == set(tokens)
    assert (tokens["claude"], tokens["my-agent"], tokens["other"], tokens["codex"]) == (
        1500,
        100,
        5,
        0,
    )
    assert (cost["claude"], cost["other"], cost["my-agent"]) == (0.5, 0.5, 0.0)
    await metrics.refresh(fleet)  # a second scrape counts nothing twice
    assert samples(metrics, "agent_fleet_tokens_total")["claude"] == 1500
