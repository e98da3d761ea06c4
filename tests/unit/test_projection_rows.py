"""The stored-row shapes `db rebuild` compares: `task_row`/`agent_row` in column order."""

import json
from datetime import UTC, datetime

from agent_fleet.codec import decode_event_json, event_json, ts
from agent_fleet.domain import agent as agent_model
from agent_fleet.domain import task as task_model
from agent_fleet.domain.agent import Registration
from agent_fleet.domain.events import type_name
from agent_fleet.domain.ids import AgentId, TaskId
from agent_fleet.domain.states import AgentMode
from agent_fleet.domain.task import NewTask
from agent_fleet.store.projection import AGENT_COLUMNS, TASK_COLUMNS, agent_row, task_row

NOW = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


def test_rows_come_in_the_order_the_projection_queries_select() -> None:
    new = NewTask(
        task_id=TaskId("t1"), title="t", prompt="p", required_capabilities=(), max_retries=1,
        timeout_secs=60,
    )  # fmt: skip
    task = task_model.after(None, task_model.create(new, NOW, "op"))
    assert tuple(task_row(task)) == TASK_COLUMNS
    registration = Registration(
        agent_id=AgentId("a"), agent_type="claude", mode=AgentMode.HTTP_PULL, hostname=None,
        capabilities=(), max_concurrency=1,
    )  # fmt: skip
    agent = agent_model.replay(agent_model.register(None, registration, NOW, "op"))
    assert agent is not None
    assert tuple(agent_row(agent)) == AGENT_COLUMNS


def test_an_event_decodes_from_one_json_object_as_stored_and_merged() -> None:
    new = NewTask(
        task_id=TaskId("t1"), title='quote " and \\ back', prompt="p",
        required_capabilities=("python",), max_retries=1, timeout_secs=60,
    )  # fmt: skip
    event = task_model.create(new, NOW, 'actor "x"')[0]
    _, data = event_json(event)
    merged = {**data, "stream_id": "t1", "version": 1, "at": ts(NOW), "actor": 'actor "x"'}
    assert decode_event_json(type_name(event), json.dumps(merged)) == event


def test_timestamps_keep_their_fixed_width_form() -> None:
    assert ts(NOW) == "2026-03-04T05:06:07.890123Z"
    assert ts(NOW.replace(microsecond=0)) == "2026-03-04T05:06:07.000000Z"
    assert ts(datetime.min.replace(tzinfo=UTC)) == "1-01-01T00:00:00.000000Z"  # as strftime
