"""Request-scoped access to the assembled fleet (the auth settings: `api/auth.py`)."""

from typing import Annotated

from fastapi import Depends, Request

from agent_fleet.services.fleet import Fleet


# `async def` on purpose: FastAPI runs a plain `def` dependency in a worker
# thread, two thread hops per request for an attribute read.
async def get_fleet(request: Request) -> Fleet:
    fleet: Fleet = request.app.state.fleet
    return fleet


FleetDep = Annotated[Fleet, Depends(get_fleet)]
