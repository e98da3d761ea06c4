"""The one ASGI application: the API's routes and the dashboard's, under one error table and
behind the same middleware (limits, Host check, metrics, request log). The fleet's
background duties run beside it (`server.py`)."""

from fastapi import FastAPI

from agent_fleet import __version__
from agent_fleet.api import agents, errors, insight, metrics, task_logs, tasks, webhooks
from agent_fleet.api.auth import AuthConfig
from agent_fleet.api.deps import FleetDep
from agent_fleet.api.hosts import AllowedHosts, HostCheck
from agent_fleet.api.limits import BodySizeLimit, TextLimits
from agent_fleet.api.replies import Health
from agent_fleet.api.requestlog import RequestLog
from agent_fleet.services.fleet import Fleet
from agent_fleet.web import insight as web_insight
from agent_fleet.web import routes as web_routes

DEFAULT_MAX_BODY_BYTES = 1_048_576


def create_app(
    fleet: Fleet,
    auth: AuthConfig,
    *,
    store_name: str,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    fleet_metrics: metrics.FleetMetrics | None = None,
    webhook_secret: str | None = None,
    text_limits: TextLimits | None = None,
    allowed_hosts: AllowedHosts | None = None,
) -> FastAPI:
    app = FastAPI(
        title="Agent Fleet",
        version=__version__,
        description="Orchestrator for AI coding agents: tasks, agents, receipts, events.",
    )
    app.state.fleet = fleet
    app.state.webhook_secret = webhook_secret
    app.state.metrics = fleet_metrics or metrics.FleetMetrics()
    app.state.auth = auth
    errors.install(app)
    app.include_router(agents.router)
    app.include_router(tasks.router)
    app.include_router(insight.router)
    app.include_router(task_logs.router)
    app.include_router(metrics.router)
    app.include_router(webhooks.router)
    app.include_router(web_routes.router)
    app.include_router(web_insight.router)

    @app.get("/healthz", tags=["health"])
    async def healthz(fleet: FleetDep) -> Health:
        await fleet.overview.check_store()
        return Health(status="ok", version=__version__, store=store_name)

    # Last added runs first: log and time everything, then refuse foreign hosts, then sizes.
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes, text=text_limits)
    app.add_middleware(HostCheck, allowed=allowed_hosts or AllowedHosts.of())
    app.add_middleware(metrics.HttpMetrics, metrics=app.state.metrics)
    app.add_middleware(RequestLog)
    return app
