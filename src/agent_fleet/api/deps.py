"""Request-scoped access to the assembled fleet and the auth settings."""

from typing import Annotated

from fastapi import Depends, Request

from agent_fleet.api.auth import AuthConfig
from agent_fleet.services.fleet import Fleet


# Both are `async def` on purpose: FastAPI runs a plain `def` dependency in a worker
# thread, two thread hops per request for an attribute read.
async def get_fleet(request: Request) -> Fleet:
    fleet: Fleet = request.app.state.fleet
    return fleet


async def get_auth(request: Request) -> AuthConfig:
    auth: AuthConfig = request.app.state.auth
    return auth


FleetDep = Annotated[Fleet, Depends(get_fleet)]
AuthDep = Annotated[AuthConfig, Depends(get_auth)]
