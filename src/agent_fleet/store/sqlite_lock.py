"""One writer per SQLite file: an exclusive lock on `<db>.lock`, held for the process's life.

Two servers on one file would each wake only their own long-polls, and each
believe it alone launches the runs on its hosts; a rebuild beside a server
would rewrite the projections from a stale read. So every command that writes
the file (serve, db migrate|rebuild|copy) takes this lock first, and a second
one stops at once, naming the holder. `flock` is released by the kernel when
the holder exits, however it exits: a stale lock file is harmless.
"""

import fcntl
import os
from pathlib import Path

from agent_fleet.domain.errors import StoreError


class DatabaseInUse(StoreError):
    def __init__(self, database: Path, holder_pid: int | None) -> None:
        who = f"pid {holder_pid}" if holder_pid else "a process that has not written its pid yet"
        super().__init__(
            f"the database {database} is in use by another agent-fleet process ({who}): "
            "one process at a time may write a SQLite file. Stop that one first; to run "
            "several servers, use PostgreSQL (orchestrator.db_url)"
        )
        self.database = database
        self.holder_pid = holder_pid


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


class DatabaseLock:
    """Held from `acquire` until `release` (or the process ends)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, database: Path) -> "DatabaseLock":
        """Lock `database` for this process, or raise `DatabaseInUse` at once."""
        path = lock_path(database)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # not inherited by children
        except OSError as e:  # the directory is unusable: the same words as the store's
            raise StoreError(f"sqlite store at {database}: {e}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise DatabaseInUse(database, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        # The file stays: unlinking it would let a newcomer lock a fresh inode while a
        # third process still waits on the old one.
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _holder(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip()
    return int(text) if text.isdigit() else None
