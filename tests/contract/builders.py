"""Domain objects for store tests, built through the real decisions."""

from datetime import UTC, datetime, timedelta

from agent_fleet.domain import agent as agent_model
from agent_fleet.domain import task as task_model
from agent_fleet.domain.agent import Agent, Registration
from agent_fleet.domain.events import AgentEvent, TaskEvent
from agent_fleet.domain.ids import AgentId, TaskId
from agent_fleet.domain.states import AgentMode, ExecutionMode
from agent_fleet.domain.values import Source

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def created(
    task_id: str,
    *,
    caps: tuple[str, ...] = (),
    priority: int = 0,
    when: float = 0,
    mode: ExecutionMode = ExecutionMode.UNDECIDED,
    repo: str | None = None,
    issue: int | None = None,
    timeout: int = 60,
    max_retries: int = 2,
) -> list[TaskEvent]:
    new = task_model.NewTask(
        task_id=TaskId(task_id),
        title=f"title {task_id}",
        prompt="p",
        required_capabilities=caps,
        execution_mode=mode,
        priority=priority,
        max_retries=max_retries,
        timeout_secs=timeout,
        source=Source(kind="forgejo", repo=repo, issue_number=issue)
        if issue
        else Source(repo=repo),
    )
    return task_model.create(new, at(when), "test")


def registered(
    agent_id: str,
    *,
    caps: tuple[str, ...] = (),
    slots: int = 1,
    mode: AgentMode = AgentMode.HTTP_PULL,
    when: float = 0,
) -> list[AgentEvent]:
    reg = Registration(
        agent_id=AgentId(agent_id),
        agent_type="test",
        mode=mode,
        hostname=None,
        capabilities=caps,
        max_concurrency=slots,
    )
    return agent_model.register(None, reg, at(when), agent_id)


def agent_of(events: list[AgentEvent]) -> Agent:
    agent = agent_model.replay(events)
    assert agent is not None
    return agent
