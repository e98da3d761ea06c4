"""A host run's output copied into its task's log as it grows, the attempt's lease redacted
(a run may print its own environment)."""

from agent_fleet.domain.task import Task
from agent_fleet.ports.hosts import HostRuns, RunKey
from agent_fleet.services.context import Context

LOG_READ_BYTES = 256 * 1024
REDACTED = "[redacted]"


class RunLogs:
    """Offsets count the bytes of the file on the host; a stored chunk can be shorter than
    the bytes it stands for (the lease redacted), which the store's ack accounts for."""

    def __init__(self, ctx: Context, runs: HostRuns) -> None:
        self._ctx = ctx
        self._runs = runs
        self._offsets: dict[RunKey, int] = {}

    async def ship(self, task: Task, key: RunKey, final: bool = False) -> bytes:
        """Copy the run's new output into the task's log and return it (as read, for stall
        detection). `final`: the run has ended, nothing more will follow what is there."""
        shipped: list[bytes] = []
        offset = self._offsets.get(key)
        if offset is None:  # first look since (re)start: continue after what is stored
            _, head = await self._ctx.store.read_log(task.task_id, task.attempt, 0, 0)
            offset = head.length
        lease = (task.lease or (task.receipt.lease if task.receipt else None) or "").encode()
        while True:
            data = await self._runs.read_log(key, offset, LOG_READ_BYTES)
            # A lease split across two reads must still be redacted: its start waits.
            piece = data if final else data[: len(data) - _secret_begins(data, lease)]
            if not piece:
                break
            shipped.append(piece)
            head = await self._ctx.store.append_log(
                task.task_id,
                task.attempt,
                offset,
                _redact_bytes(piece, lease),
                self._ctx.options.log_limit_bytes,
                source_length=len(piece),
            )
            offset = head.length  # the store's ack, in file bytes: where to read next
            if len(data) < LOG_READ_BYTES:
                break
        self._offsets[key] = offset
        return b"".join(shipped)

    def forget(self, key: RunKey) -> None:
        self._offsets.pop(key, None)


def redact_lease(text: str, lease: str) -> str:
    return text.replace(lease, REDACTED)


def _redact_bytes(data: bytes, secret: bytes) -> bytes:
    return data.replace(secret, REDACTED.encode()) if secret else data


def _secret_begins(data: bytes, secret: bytes) -> int:
    """How many trailing bytes of `data` could be the start of `secret`."""
    for n in range(min(len(secret) - 1, len(data)), 0, -1):
        if data.endswith(secret[:n]):
            return n
    return 0
