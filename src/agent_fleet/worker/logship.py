"""Ships a task's output to the server in order, from the last acknowledged offset."""

import asyncio

from agent_fleet.worker.client import ClientError, FleetClient, Refused

CHUNK_BYTES = 64 * 1024


class LogShipper:
    """Output is appended here as it comes; `run` sends it; `flush` waits until all is acked."""

    def __init__(self, client: FleetClient, task_id: str, agent_id: str, lease: str) -> None:
        self._client = client
        self._path = f"/api/v1/tasks/{task_id}/logs"
        self._agent_id = agent_id
        self._lease = lease
        self._buffer = bytearray()
        self._acked = 0
        self._more = asyncio.Event()
        self.refused = False

    def append(self, data: bytes) -> None:
        self._buffer += data
        self._more.set()

    @property
    def pending(self) -> int:
        return len(self._buffer) - self._acked

    async def run(self, stop: asyncio.Event) -> None:
        while not self.refused:
            if self.pending == 0:
                if stop.is_set():
                    return
                self._more.clear()
                waiter = asyncio.ensure_future(self._more.wait())
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
                continue
            await self._send_one()

    async def _send_one(self) -> None:
        chunk = bytes(self._buffer[self._acked : self._acked + CHUNK_BYTES])
        text = _whole(chunk)  # the buffer is valid UTF-8; never split a character
        body = {
            "agent_id": self._agent_id,
            "lease": self._lease,
            "offset": self._acked,
            "data": text,
        }
        if not text:
            return
        try:
            reply = await self._client.call("POST", self._path, body)
        except Refused:
            self.refused = True  # the attempt is over: nobody will read more of it
            return
        except ClientError:
            return
        ack = int(reply.json()["ack_offset"])
        # The server's ack is the truth: a gap rewinds us, a resend moves us on.
        self._acked = min(max(ack, 0), len(self._buffer))

    async def flush(self, within_secs: float) -> None:
        try:
            async with asyncio.timeout(within_secs):
                while self.pending and not self.refused:
                    await self._send_one()
        except TimeoutError:
            pass


def _whole(chunk: bytes) -> str:
    for cut in range(len(chunk), max(len(chunk) - 4, 0), -1):
        try:
            return chunk[:cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return chunk.decode("utf-8", errors="replace")
