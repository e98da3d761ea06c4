"""Task log endpoints: agents append by offset, anyone reads while the task runs."""

from typing import Annotated

from fastapi import APIRouter, Query, Security
from fastapi.responses import PlainTextResponse

from agent_fleet.api.auth import acting_as
from agent_fleet.api.deps import FleetDep
from agent_fleet.api.replies import ERRORS, JSON_ERRORS, LogAck
from agent_fleet.api.schemas import LogChunkBody
from agent_fleet.api.tasks import TaskIdPath

router = APIRouter(prefix="/api/v1", tags=["logs"], responses=ERRORS)


@router.post("/tasks/{task_id}/logs", dependencies=[Security(acting_as("logs", LogChunkBody))])
async def append_log(task_id: TaskIdPath, body: LogChunkBody, fleet: FleetDep) -> LogAck:
    ack = await fleet.task_logs.append(task_id, body.agent_id, body.lease, body.offset, body.data)
    return LogAck(ack_offset=ack)


@router.get(
    "/tasks/{task_id}/logs",
    response_class=PlainTextResponse,
    responses={
        **JSON_ERRORS,
        200: {"content": {"text/plain": {}}, "description": "log text from `offset`"},
    },
)
async def read_log(
    task_id: TaskIdPath,
    fleet: FleetDep,
    offset: Annotated[int, Query(ge=0, le=2**53)] = 0,
    attempt: Annotated[int | None, Query(ge=0, le=10_000)] = None,
) -> PlainTextResponse:
    """The log of the current attempt (or `attempt`) from byte `offset`.

    Headers: `X-Next-Offset` (ask again from there to follow the log),
    `X-Attempt`, and `X-Log-Truncated: true` once the size limit was reached.
    """
    part = await fleet.task_logs.read(task_id, attempt, offset)
    return PlainTextResponse(
        part.data.decode(errors="replace"),
        headers={
            "X-Next-Offset": str(part.next_offset),
            "X-Attempt": str(part.attempt),
            "X-Log-Truncated": "true" if part.head.truncated else "false",
        },
    )
