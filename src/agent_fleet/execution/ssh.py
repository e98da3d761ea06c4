"""The SSH shell: one reused asyncssh connection per host, host keys always verified."""

import asyncio
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

import asyncssh

from agent_fleet.execution.shell import COMMAND_TIMEOUT_SECS, Completed, ShellError


@dataclass(frozen=True, slots=True, kw_only=True)
class SshTarget:
    hostname: str
    port: int = 22
    user: str | None = None
    key_path: str | None = None
    # None: the user's ~/.ssh/known_hosts (asyncssh's default). Never "no check".
    known_hosts: str | None = None
    connect_timeout: float = 10.0


class SshShell:
    def __init__(self, target: SshTarget) -> None:
        self._target = target
        self._conn: asyncssh.SSHClientConnection | None = None
        self._lock = asyncio.Lock()
        self._options: dict[str, object] = {}
        if target.known_hosts is not None:
            self._options["known_hosts"] = os.path.expanduser(target.known_hosts)
        if target.key_path is not None:
            self._options["client_keys"] = [os.path.expanduser(target.key_path)]

    async def _connection(self) -> asyncssh.SSHClientConnection:
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return self._conn
            t = self._target
            try:
                self._conn = await asyncssh.connect(
                    t.hostname,
                    port=t.port,
                    username=t.user,
                    connect_timeout=t.connect_timeout,
                    keepalive_interval=15,
                    keepalive_count_max=3,
                    **self._options,
                )
            except (OSError, asyncssh.Error, TimeoutError) as e:
                raise ShellError(f"ssh {t.hostname}:{t.port}: {_reason(e)}") from e
            return self._conn

    async def run(
        self, argv: Sequence[str], stdin: bytes = b"", limit_secs: float = COMMAND_TIMEOUT_SECS
    ) -> Completed:
        conn = await self._connection()
        command = shlex.join(argv)  # every element quoted: data, never code
        try:
            # No input: stdin is /dev/null (an empty `input` would leave it open).
            feed: dict[str, object] = {"input": stdin} if stdin else {"stdin": asyncssh.DEVNULL}
            result = await conn.run(command, encoding=None, check=False, timeout=limit_secs, **feed)
        except asyncssh.TimeoutError as e:
            raise ShellError(f"{argv[0]} did not finish within {limit_secs:g}s") from e
        except (OSError, asyncssh.Error) as e:
            await self._drop()
            raise ShellError(f"ssh {self._target.hostname}: {_reason(e)}") from e
        code = result.exit_status if result.exit_status is not None else 255
        return Completed(code=code, stdout=_bytes(result.stdout), stderr=_bytes(result.stderr))

    async def _drop(self) -> None:
        async with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            await conn.wait_closed()


def _bytes(data: object) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    return b""


def _reason(e: BaseException) -> str:
    if isinstance(e, asyncssh.Error):
        return e.reason or type(e).__name__
    if isinstance(e, TimeoutError):
        return "connection timed out"
    return str(e) or type(e).__name__
