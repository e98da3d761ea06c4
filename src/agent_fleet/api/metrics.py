"""Prometheus metrics: live gauges read from the store at scrape, counters fed by events.

Every label value comes from a fixed set (or is folded into `other`): a label fed
by a client (an HTTP method, a path, a capability name) would make one series per
distinct value, and anyone could grow /metrics without bound.
"""

import time
from collections import Counter
from collections.abc import Iterable, Sequence

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import Counter as PromCounter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent_fleet.domain.budget import Spend, receipt_of
from agent_fleet.domain.events import AnyEvent, type_name
from agent_fleet.domain.states import TaskState
from agent_fleet.ports.queries import AgentQuery, TaskQuery
from agent_fleet.services.fleet import Fleet

QUEUE_SAMPLE = 5000
#: The queue-depth gauge shows this many capabilities by name; the rest are summed as "(other)".
QUEUE_CAPABILITIES_SHOWN = 50
OTHER = "other"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
WEBHOOK_RESULTS = frozenset(
    {"created", "rerouted", "cancelled", "unchanged", "ignored", "duplicate", "pull", "sent"}
    | {"refused", "error"}
)


def bounded(value: str, allowed: frozenset[str]) -> str:
    """`value` when it is one of `allowed`, else "other"."""
    return value if value in allowed else OTHER


def status_class(status: int) -> str:
    """200 → "2xx": five values instead of every status a handler might send."""
    return f"{status // 100}xx" if 100 <= status < 600 else OTHER


def webhook_result(status: str) -> str:
    """The first word of a delivery's outcome ("ignored: no such task" → "ignored")."""
    return bounded(status.split(":")[0].split(" ")[0], WEBHOOK_RESULTS)


#: The `agent_type` label of an agent whose type is not among the known ones.
OTHER_AGENT_TYPE = "other"


class FleetMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.tasks = Gauge("agent_fleet_tasks", "Tasks by state", ["state"], registry=r)
        self.queue = Gauge(
            "agent_fleet_queue_depth", "Open tasks needing a capability", ["capability"], registry=r
        )
        self.agents = Gauge(
            "agent_fleet_agents", "Agents by mode and status", ["mode", "status"], registry=r
        )
        self.events = PromCounter(
            "agent_fleet_events", "Events appended, by type", ["type"], registry=r
        )
        self.dispatch = Histogram(
            "agent_fleet_dispatch_latency_seconds",
            "From a task's creation (or retry) to its assignment",
            registry=r,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
        )
        self.webhooks = PromCounter(
            "agent_fleet_webhook_deliveries", "Forgejo deliveries by result", ["result"], registry=r
        )
        # Spend: a fixed label set (the agent types bootstrap knows + "other"), since agents
        # name their own.
        self.agent_types = frozenset({OTHER_AGENT_TYPE})
        self.tokens = PromCounter(
            "agent_fleet_tokens",
            "Tokens receipts reported, by agent type",
            ["agent_type"],
            registry=r,
        )
        self.cost = PromCounter(
            "agent_fleet_cost_usd",
            "USD receipts reported, by agent type",
            ["agent_type"],
            registry=r,
        )
        self._unattributed: dict[str, Spend] = {}  # by agent id, until the next scrape names types
        self.allow_agent_types(())
        self.http = Histogram(
            "agent_fleet_http_request_seconds",
            "HTTP request latency",
            ["method", "route", "status"],
            registry=r,
        )

    def observe(self, events: Sequence[AnyEvent]) -> None:
        for event in events:
            self.events.labels(type=type_name(event)).inc()
            receipt = receipt_of(event)
            if receipt is not None and receipt.usage is not None:
                spent = self._unattributed.get(receipt.agent_id, Spend())
                self._unattributed[receipt.agent_id] = spent.plus(receipt.usage)

    def allow_agent_types(self, names: Iterable[str]) -> None:
        """The configured agent types join the label set (each series exists from 0)."""
        self.agent_types = self.agent_types | frozenset(names)
        for name in self.agent_types:
            self.tokens.labels(agent_type=name)
            self.cost.labels(agent_type=name)

    def _attribute_spend(self, agent_types: dict[str, str]) -> None:
        for agent_id, spent in self._unattributed.items():
            name = agent_types.get(agent_id, OTHER_AGENT_TYPE)
            label = name if name in self.agent_types else OTHER_AGENT_TYPE
            self.tokens.labels(agent_type=label).inc(spent.tokens)
            self.cost.labels(agent_type=label).inc(spent.cost_usd)
        self._unattributed.clear()

    def observe_dispatch(self, waited_secs: float) -> None:
        self.dispatch.observe(max(waited_secs, 0.0))

    async def refresh(self, fleet: Fleet) -> None:
        counts = await fleet.overview.task_counts()
        for state in TaskState:
            self.tasks.labels(state=state.value).set(counts.get(state.value, 0))
        open_tasks = await fleet.tasks.find(TaskQuery(state=TaskState.CREATED, limit=QUEUE_SAMPLE))
        needs = Counter(c for t in open_tasks for c in (t.required_capabilities or ("(none)",)))
        shown = dict(needs.most_common(QUEUE_CAPABILITIES_SHOWN))
        rest = sum(needs.values()) - sum(shown.values())
        self.queue.clear()
        for capability, count in (shown | ({"(other)": rest} if rest else {})).items():
            self.queue.labels(capability=capability).set(count)
        every_agent = await fleet.agents.find(AgentQuery())
        self._attribute_spend({a.agent_id: a.agent_type for a in every_agent})
        agents = Counter((a.mode.value, a.status.value) for a in every_agent)
        self.agents.clear()
        for (mode, status), count in agents.items():
            self.agents.labels(mode=mode, status=status).set(count)


router = APIRouter(include_in_schema=False)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    fleet_metrics: FleetMetrics = request.app.state.metrics
    await fleet_metrics.refresh(request.app.state.fleet)
    return Response(generate_latest(fleet_metrics.registry), media_type=CONTENT_TYPE_LATEST)


class HttpMetrics:
    """Times every request by method, route template (never the raw path: ids are
    unbounded) and status class."""

    def __init__(self, app: ASGIApp, metrics: FleetMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def tracking(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "(unmatched)")
            self.metrics.http.labels(
                method=bounded(scope["method"], HTTP_METHODS),
                route=template,
                status=status_class(status),
            ).observe(time.perf_counter() - started)
