"""Read-only insight endpoints: the fleet report behind the charts and `agent-fleet report`,
and one task's spend by attempt."""

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel

from agent_fleet.api.deps import FleetDep
from agent_fleet.api.replies import ERRORS, SpendOut, UsageOut, spend_out
from agent_fleet.api.tasks import TaskIdPath
from agent_fleet.domain.report import FleetReport
from agent_fleet.services.insight import window_length

router = APIRouter(prefix="/api/v1", tags=["insight"], responses=ERRORS)
#: `since` as the dashboard and the CLI write it: 90m, 24h, 7d, 2w.
Since = Annotated[str, Query(max_length=8, description="a length back from `until`: 90m, 24h, 7d")]


@router.get("/report")
async def report(
    fleet: FleetDep, since: Since = "24h", until: AwareDatetime | None = None
) -> FleetReport:
    """Tasks, outcomes, wait and run times, failures and spend in the window (UTC)."""
    return await fleet.insight.report(window_length(since), until)


class AttemptSpendOut(BaseModel):
    attempt: int
    agent_id: str
    host_id: str | None
    #: As the attempt's receipt reported it; null when it reported none.
    usage: UsageOut | None
    #: What it counts for: its tokens (input + output when only split) and USD.
    spend: SpendOut


class BudgetOut(BaseModel):
    max_cost_usd: float | None
    max_tokens: int | None
    #: Why the task's spend has reached its budget; null while within it.
    overrun: str | None


class TaskSpendOut(BaseModel):
    task_id: str
    spend: SpendOut
    budget: BudgetOut
    attempts: list[AttemptSpendOut]


@router.get("/tasks/{task_id}/spend")
async def task_spend(task_id: TaskIdPath, fleet: FleetDep) -> TaskSpendOut:
    """Usage per attempt and the total across attempts."""
    spending = await fleet.insight.task_spend(task_id)
    task, budget = spending.task, spending.budget
    return TaskSpendOut(
        task_id=task.task_id,
        spend=spend_out(task.spend),
        budget=BudgetOut(
            max_cost_usd=budget.max_cost_usd,
            max_tokens=budget.max_tokens,
            overrun=spending.overrun,
        ),
        attempts=[
            AttemptSpendOut(
                attempt=a.attempt,
                agent_id=a.agent_id,
                host_id=a.host_id,
                usage=UsageOut.model_validate(a.usage) if a.usage else None,
                spend=spend_out(a.spend),
            )
            for a in spending.attempts
        ],
    )
