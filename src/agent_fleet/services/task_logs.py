"""Task output: agents append chunks by offset; people read it while the task runs."""

from dataclasses import dataclass

from agent_fleet.domain import task as task_model
from agent_fleet.domain.ids import TaskId
from agent_fleet.domain.logbook import LogHead
from agent_fleet.services.commit import load_task
from agent_fleet.services.context import Context

READ_CHUNK_BYTES = 1_048_576


@dataclass(frozen=True, slots=True)
class LogSlice:
    data: bytes
    attempt: int
    next_offset: int
    head: LogHead


class TaskLogService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    async def append(
        self, task_id: str, agent_id: str, lease: str | None, offset: int, data: str
    ) -> int:
        """Store a chunk of the holder's current attempt; returns the ack offset."""
        task = await load_task(self._ctx, task_id)
        task_model.check_holder(task, agent_id, lease)
        head = await self._ctx.store.append_log(
            TaskId(task_id), task.attempt, offset, data.encode(), self._ctx.options.log_limit_bytes
        )
        return head.length

    async def read(self, task_id: str, attempt: int | None, offset: int) -> LogSlice:
        task = await load_task(self._ctx, task_id)
        which = task.attempt if attempt is None else attempt
        data, head = await self._ctx.store.read_log(
            TaskId(task_id), which, offset, READ_CHUNK_BYTES
        )
        return LogSlice(data=data, attempt=which, next_offset=offset + len(data), head=head)
