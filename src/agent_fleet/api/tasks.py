"""Task endpoints: operator CRUD and actions, and what pull agents call."""

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response, Security

from agent_fleet.api.auth import Admin, Caller, acting_as
from agent_fleet.api.cursor import decode_cursor, encode_cursor
from agent_fleet.api.deps import FleetDep
from agent_fleet.api.disconnect import client_gone
from agent_fleet.api.replies import (
    ERRORS,
    EventList,
    HandoutOut,
    StatusReply,
    TaskList,
    TaskOut,
    event_out,
    handout_out,
    task_out,
)
from agent_fleet.api.schemas import (
    AssignBody,
    CreateTaskBody,
    DequeueBody,
    Identifier,
    PostedReceiptBody,
    ReceiptBody,
    Repo,
    StatusBody,
)
from agent_fleet.domain.errors import InvalidInput
from agent_fleet.domain.states import TaskState
from agent_fleet.domain.values import Source
from agent_fleet.ports.queries import TaskQuery
from agent_fleet.services.tasks import CreateTask

router = APIRouter(prefix="/api/v1", tags=["tasks"], responses=ERRORS)
EVENTS_PAGE = 100
MAX_EVENTS_PAGE = 1000
TaskIdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]


@router.get("/tasks")
async def list_tasks(
    fleet: FleetDep,
    state: TaskState | None = None,
    agent_id: Annotated[Identifier | None, Query()] = None,
    repo: Annotated[Repo | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    status: Annotated[TaskState | None, Query(description="the original's name for state")] = None,
    sort: Literal["newest", "spend"] = "newest",
) -> TaskList:
    if state is not None and status is not None and state is not status:
        raise InvalidInput("status", "status and state disagree")
    state = state or status
    after = decode_cursor(cursor) if cursor else None
    by_spend = sort == "spend"  # the top spenders (USD, then tokens): one page, no cursor
    if by_spend and after is not None:
        raise InvalidInput("cursor", "sort=spend lists one page: raise limit instead")
    query = TaskQuery(
        state=state, agent_id=agent_id, repo=repo, limit=limit + 1, after=after, by_spend=by_spend
    )
    tasks = await fleet.tasks.find(query)
    page = tasks[:limit]
    next_cursor = encode_cursor(page[-1]) if len(tasks) > limit and not by_spend else None
    return TaskList(tasks=[task_out(t) for t in page], next_cursor=next_cursor)


@router.post("/tasks", status_code=201, dependencies=[Admin])
async def create_task(body: CreateTaskBody, fleet: FleetDep) -> TaskOut:
    task = await fleet.tasks.create(
        CreateTask(
            title=body.title,
            prompt=body.prompt,
            required_capabilities=tuple(body.required_capabilities),
            execution_mode=body.execution_mode,
            max_retries=body.max_retries,
            timeout_secs=body.timeout_secs,
            priority=body.priority_value(),
            source=Source(kind="api", repo=body.repo),
        )
    )
    return task_out(task)


@router.post(
    "/tasks/dequeue",
    response_model=HandoutOut,
    responses={204: {"description": "no task for this agent now"}},
)
async def dequeue(
    body: DequeueBody,
    request: Request,
    caller: Annotated[Caller, Security(acting_as("dequeue", DequeueBody))],
    fleet: FleetDep,
) -> HandoutOut | Response:
    async with client_gone(request) as gone:  # a dead agent's long-poll takes nothing
        handout = await fleet.dequeue.dequeue(
            caller.known(), body.capabilities, timedelta(seconds=body.wait_secs), gone
        )
    if handout is None:
        return Response(status_code=204)
    assigned_at = handout.task.assigned_at
    if handout.task.attempt == 0 and assigned_at is not None:
        waited = assigned_at - handout.task.created_at
        request.app.state.metrics.observe_dispatch(waited.total_seconds())
    return handout_out(handout.task, handout.lease)


@router.get("/tasks/{task_id}")
async def get_task(task_id: TaskIdPath, fleet: FleetDep) -> TaskOut:
    return task_out(await fleet.tasks.get(task_id))


@router.get("/tasks/{task_id}/events")
async def task_events(
    task_id: TaskIdPath,
    fleet: FleetDep,
    limit: Annotated[int, Query(ge=1, le=MAX_EVENTS_PAGE)] = EVENTS_PAGE,
    cursor: Annotated[str | None, Query(max_length=19, pattern=r"^[0-9]+$")] = None,
) -> EventList:
    """The task's history, oldest first, a page at a time: pass `next_cursor` back as
    `cursor` for the next page (it is null on the last one)."""
    after = int(cursor) if cursor else 0
    page = await fleet.tasks.events_after(task_id, after, limit + 1)
    shown = page[:limit]
    next_cursor = str(shown[-1].event.version) if len(page) > limit else None
    return EventList(events=[event_out(e) for e in shown], next_cursor=next_cursor)


@router.post("/tasks/{task_id}/assign", dependencies=[Admin])
async def assign_task(task_id: TaskIdPath, body: AssignBody, fleet: FleetDep) -> TaskOut:
    return task_out(await fleet.tasks.assign(task_id, body.agent_id))


@router.post("/tasks/{task_id}/status", dependencies=[Security(acting_as("status", StatusBody))])
async def report_status(task_id: TaskIdPath, body: StatusBody, fleet: FleetDep) -> StatusReply:
    task, cancel = await fleet.tasks.report_status(
        task_id, body.agent_id, body.lease, TaskState(body.reported), body.message, body.progress
    )
    return StatusReply(task=task_out(task), cancel=cancel)


@router.post(
    "/tasks/{task_id}/complete", dependencies=[Security(acting_as("complete", ReceiptBody))]
)
async def complete_task(task_id: TaskIdPath, body: ReceiptBody, fleet: FleetDep) -> TaskOut:
    if body.task_id is not None and body.task_id != task_id:
        raise InvalidInput("task_id", "does not match the task in the path")
    return task_out(await fleet.tasks.complete(task_id, body.to_receipt(task_id)))


@router.post("/receipts", dependencies=[Security(acting_as("complete", PostedReceiptBody))])
async def post_receipt(body: PostedReceiptBody, fleet: FleetDep) -> TaskOut:
    return task_out(await fleet.tasks.complete(body.task_id, body.to_receipt(body.task_id)))


@router.post("/tasks/{task_id}/retry", dependencies=[Admin])
async def retry_task(task_id: TaskIdPath, fleet: FleetDep) -> TaskOut:
    return task_out(await fleet.tasks.retry(task_id))


@router.post("/tasks/{task_id}/cancel", dependencies=[Admin])
async def cancel_task(task_id: TaskIdPath, fleet: FleetDep) -> TaskOut:
    return task_out(await fleet.tasks.cancel(task_id))
