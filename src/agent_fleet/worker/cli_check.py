"""The agent CLI at start-up: is it there, and which version is it."""

import asyncio
import shutil
from collections.abc import Mapping
from dataclasses import dataclass

from agent_fleet.adapters.base import AgentAdapter, RunSpec

VERSION_TIMEOUT_SECS = 60.0
VERSION_MAX_CHARS = 200
_PROBE = RunSpec(
    workspace=".",
    prompt_file="prompt.md",
    receipt_file="receipt.json",
    task_id="-",
    branch="-",
    repo=None,
)


class CliMissing(Exception):
    """The agent CLI is not on PATH (or not executable)."""

    def __init__(self, program: str) -> None:
        super().__init__(program)
        self.program = program


@dataclass(frozen=True, slots=True)
class CliInfo:
    path: str
    version: str | None  # its --version line; None when it has or gave none


async def check_cli(adapter: AgentAdapter, env: Mapping[str, str]) -> CliInfo:
    """Find the CLI's program on PATH and ask its version; CliMissing when it is not there."""
    program = adapter.argv(_PROBE)[0]
    path = shutil.which(program, path=env.get("PATH"))
    if path is None:
        raise CliMissing(program)
    argv = adapter.version_argv()
    version = await _version(path, argv[1:], env) if argv else None
    return CliInfo(path=path, version=version)


async def _version(path: str, args: list[str], env: Mapping[str, str]) -> str | None:
    try:
        proc = await asyncio.create_subprocess_exec(
            path,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(env),
        )
    except OSError:
        return None
    try:
        async with asyncio.timeout(VERSION_TIMEOUT_SECS):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return None
    lines = [line.strip() for line in out.decode("utf-8", "replace").splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        return None
    return lines[-1][:VERSION_MAX_CHARS]
