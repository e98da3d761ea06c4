"""An agent CLI as a child process in its own process group: output, exit, and kill."""

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

TERM_GRACE_SECS = 5.0
READ_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class Exit:
    code: int
    killed: bool


class AgentProcess:
    """Started with `start`, drained by `wait`; `stop` kills the whole group (TERM, grace, KILL)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        self._killed = False

    @classmethod
    async def start(
        cls, argv: list[str], cwd: Path, env: Mapping[str, str], stdin: bytes
    ) -> "AgentProcess":
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=dict(env),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its own process group: a kill reaches its children
            limit=READ_LIMIT,
        )
        agent = cls(proc)
        await agent._feed(stdin)
        return agent

    async def _feed(self, data: bytes) -> None:
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(data)
            await self._proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # a CLI that does not read stdin is fine
        finally:
            self._proc.stdin.close()

    @property
    def pid(self) -> int:
        return self._proc.pid

    async def wait(self, on_output: Callable[[bytes], Awaitable[None]]) -> Exit:
        """Pass every piece of output (whole lines where possible) to `on_output`, then exit."""
        assert self._proc.stdout is not None
        while True:
            try:
                piece = await self._proc.stdout.readuntil(b"\n")
            except asyncio.IncompleteReadError as e:
                piece = e.partial
            except asyncio.LimitOverrunError as e:
                piece = await self._proc.stdout.readexactly(e.consumed)
            if not piece:
                break
            await on_output(piece)
        code = await self._proc.wait()
        return Exit(code=code, killed=self._killed)

    async def stop(self, grace: float = TERM_GRACE_SECS) -> None:
        """TERM to the group, wait `grace`, then KILL the group."""
        if self._proc.returncode is not None:
            return
        self._killed = True
        self._signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(grace):
                await self._proc.wait()
        except TimeoutError:
            self._signal(signal.SIGKILL)
            await self._proc.wait()

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(self._proc.pid, sig)
