"""`agent-fleet serve`: one store, the fleet's duties and the HTTP server, started and
stopped in a written order."""

import asyncio
from pathlib import Path

import structlog

from agent_fleet import __version__
from agent_fleet.api.connections import ConnectionLimits
from agent_fleet.api.http_server import HttpServer
from agent_fleet.api.metrics import FleetMetrics
from agent_fleet.bootstrap import (
    build_app,
    build_fleet,
    open_store,
    open_to_the_network_without_tokens,
)
from agent_fleet.config import Settings
from agent_fleet.services.fleet import Fleet

log = structlog.get_logger("agent_fleet")


async def serve(settings: Settings, source: Path | None) -> None:
    """Run until SIGTERM/SIGINT. Shutdown order: the HTTP server stops intake and drains
    requests, then the duties are told to stop, then (finally) the store closes."""
    store, store_name = await open_store(settings)
    fleet: Fleet | None = None
    try:
        metrics = FleetMetrics()
        fleet = build_fleet(store, settings, metrics)
        app = build_app(fleet, settings, store_name, metrics)
        for what in open_to_the_network_without_tokens(settings):
            log.warning("UNPROTECTED: listening beyond loopback without a token", missing=what)
        log.info(
            "agent-fleet starting",
            version=__version__,
            config=str(source) if source else "embedded defaults",
            store=store_name,
            listen=f"{settings.server.bind}:{settings.server.port}",
        )
        server = HttpServer(
            app,
            settings.server.bind,
            settings.server.port,
            connection_limits(settings),
            on_exit=fleet.dequeue.close,
        )
        stop = asyncio.Event()
        async with asyncio.TaskGroup() as group:
            group.create_task(fleet.run_background(stop))
            await server.serve()
            stop.set()
    finally:
        if fleet is not None and fleet.forge is not None:
            await fleet.forge.close()
        if fleet is not None and fleet.hosts is not None:
            await fleet.hosts.close()
        await store.close()
        log.info("agent-fleet stopped")


def connection_limits(settings: Settings) -> ConnectionLimits:
    return ConnectionLimits(
        header_timeout_secs=settings.server.header_timeout_secs,
        body_timeout_secs=settings.server.body_timeout_secs,
        max_connections=settings.server.max_connections,
    )
