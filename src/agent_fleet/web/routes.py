"""Dashboard pages and the HTML fragments they poll for live updates."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from agent_fleet import __version__
from agent_fleet.domain.events import type_name
from agent_fleet.domain.states import AgentStatus, TaskState
from agent_fleet.ports.queries import AgentQuery, TaskQuery
from agent_fleet.services.fleet import Fleet

templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
router = APIRouter(include_in_schema=False)
STATES = [s.value for s in TaskState]
LISTED = 200


def _fleet(request: Request) -> Fleet:
    fleet: Fleet = request.app.state.fleet
    return fleet


def _age(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    seconds = int((datetime.now(UTC) - moment).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{max(seconds, 0)}s ago"


templates.env.filters["age"] = _age
templates.env.filters["event_type"] = type_name


async def _tasks_context(fleet: Fleet, state: str | None, q: str | None) -> dict[str, Any]:
    chosen = TaskState(state) if state in STATES else None
    tasks = await fleet.tasks.find(TaskQuery(state=chosen, limit=LISTED))
    if q:
        needle = q.casefold()
        tasks = [t for t in tasks if needle in t.title.casefold() or needle in t.task_id]
    counts = await fleet.overview.task_counts()
    return {"tasks": tasks, "counts": counts, "states": STATES, "state": chosen, "q": q or ""}


async def _agents_context(fleet: Fleet) -> dict[str, Any]:
    return {"agents": await fleet.overview.agents()}


@router.get("/", response_class=HTMLResponse)
async def index(
    request: Request,
    state: Annotated[str | None, Query(max_length=32)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
) -> HTMLResponse:
    fleet = _fleet(request)
    context = {
        **await _tasks_context(fleet, state, q),
        **await _agents_context(fleet),
        "version": __version__,
    }
    return templates.TemplateResponse(request, "index.html", context)


@router.get("/ui/tasks", response_class=HTMLResponse)
async def tasks_fragment(
    request: Request,
    state: Annotated[str | None, Query(max_length=32)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
) -> HTMLResponse:
    context = await _tasks_context(_fleet(request), state, q)
    return templates.TemplateResponse(request, "_tasks.html", context)


@router.get("/ui/agents", response_class=HTMLResponse)
async def agents_fragment(request: Request) -> HTMLResponse:
    context = await _agents_context(_fleet(request))
    return templates.TemplateResponse(request, "_agents.html", context)


#: Events shown per page on a task's page; older ones are a link away.
EVENTS_SHOWN = 50
#: `?before=N`: show the events before version N instead of the newest.
Before = Annotated[int | None, Query(ge=1, le=2**62)]


@router.get("/tasks/{task_id}", response_class=HTMLResponse)
async def task_page(request: Request, task_id: str, before: Before = None) -> HTMLResponse:
    fleet = _fleet(request)
    task = await fleet.tasks.get(task_id)
    context = {"task": task, "version": __version__, "before": before}
    return templates.TemplateResponse(request, "task.html", context)


@router.get("/ui/tasks/{task_id}/detail", response_class=HTMLResponse)
async def task_detail(request: Request, task_id: str, before: Before = None) -> HTMLResponse:
    """The task and one page of its events: the newest, or those before `before`."""
    fleet = _fleet(request)
    task = await fleet.tasks.get(task_id)
    events = await fleet.tasks.events_before(task_id, before, EVENTS_SHOWN)
    online = await fleet.agents.find(AgentQuery(status=AgentStatus.ONLINE))
    context = {
        "task": task,
        "events": events,
        "agents": online,
        "before": before,
        "page_size": EVENTS_SHOWN,
    }
    # Spend and budgets: usage per attempt, and why the task stopped retrying, if it did.
    spending = await fleet.insight.task_spend(task_id)
    context.update(task=spending.task, attempts=spending.attempts, overrun=spending.overrun)
    return templates.TemplateResponse(request, "_task_detail.html", context)
