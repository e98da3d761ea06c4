"""Running one argv on a host and collecting its result: locally, or (see `ssh`) over SSH.

Every command is an argv list. The local shell executes it directly; the SSH shell
quotes each element (`shlex.join`) into the one command string SSH carries, so an
element is data to the remote shell whatever bytes it holds.
"""

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

COMMAND_TIMEOUT_SECS = 30.0


class ShellError(Exception):
    """The host could not be reached or did not answer in time."""


@dataclass(frozen=True, slots=True)
class Completed:
    code: int
    stdout: bytes
    stderr: bytes

    def text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")

    def why(self) -> str:
        return (self.stderr or self.stdout).decode("utf-8", errors="replace").strip()[-500:]


class Shell(Protocol):
    """Where a host's commands run. `run` raises ShellError only when the host is unreachable."""

    async def run(
        self, argv: Sequence[str], stdin: bytes = b"", limit_secs: float = COMMAND_TIMEOUT_SECS
    ) -> Completed: ...

    async def close(self) -> None: ...


class LocalShell:
    """`hostname = "localhost"`: the same commands as a child process of ours."""

    async def run(
        self, argv: Sequence[str], stdin: bytes = b"", limit_secs: float = COMMAND_TIMEOUT_SECS
    ) -> Completed:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as e:
            raise ShellError(f"cannot run {argv[0]}: {e.strerror}") from e
        try:
            async with asyncio.timeout(limit_secs):
                out, err = await proc.communicate(stdin)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise ShellError(f"{argv[0]} did not finish within {limit_secs:g}s") from None
        return Completed(code=proc.returncode or 0, stdout=out, stderr=err)

    async def close(self) -> None:
        return None
