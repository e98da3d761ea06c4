"""The SQLite file under the store: still the one it opened, and a WAL of bounded size.

A database file deleted or replaced under an open connection goes unnoticed by
SQLite: writes go on into the unlinked inode and vanish at restart. So the file's
(device, inode) is remembered when first opened and compared with the path's
before every read and write, and after every commit: a difference is a
`StoreError` (503 `store_unavailable`), never an acknowledged write into the void.

The WAL grows while any reader holds an old snapshot (a long external read
transaction). `journal_size_limit` truncates it when it is next reset, and the
writer tries a non-blocking `wal_checkpoint(TRUNCATE)` while it is over the limit,
so it shrinks back soon after the reader lets go, writes or no writes.
"""

import os
import sqlite3
import threading
from pathlib import Path
from typing import NoReturn

import structlog

from agent_fleet.domain.errors import StoreError

log = structlog.get_logger("agent_fleet.store")
WAL_LIMIT_BYTES = 8 * 1024 * 1024


class FileIdentity:
    """The (device, inode) of the database as first opened; `check` compares the path's."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._opened: tuple[int, int] | None = None
        self._lost = False  # logged once per loss, not per request
        self._mutex = threading.Lock()  # the writer and reader threads both check

    def remember(self) -> None:
        """Called right after a connection opened the file: the first one sets it."""
        with self._mutex:
            if self._opened is None:
                st = os.stat(self.path)
                self._opened = (st.st_dev, st.st_ino)

    def check(self) -> None:
        with self._mutex:
            if self._opened is None:
                return
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                st = None
            if st is None:
                self._lose("was deleted")
            elif (st.st_dev, st.st_ino) != self._opened:
                self._lose("was replaced by another file")
            elif self._lost:
                log.warning("sqlite database file is back", path=str(self.path))
                self._lost = False

    def _lose(self, what: str) -> NoReturn:
        message = (
            f"sqlite store at {self.path}: the database file {what} while this process "
            "had it open; nothing is read or written until it is restored (then restart)"
        )
        if not self._lost:
            log.error("sqlite database file lost", path=str(self.path), why=what)
            self._lost = True
        raise StoreError(message)


def wal_bytes(path: Path) -> int:
    try:
        return os.stat(f"{path}-wal").st_size
    except FileNotFoundError:
        return 0


def bound_wal(conn: sqlite3.Connection) -> None:
    """On the writer's connection: a WAL reset after a full checkpoint is cut to the limit."""
    conn.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")


def checkpoint(conn: sqlite3.Connection, busy_timeout_ms: int) -> bool:
    """Copy the WAL into the database and truncate it, waiting for nobody; True when done.

    A reader on an older snapshot (or a foreign writer) makes it stop short at once:
    the caller tries again later.
    """
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    except sqlite3.OperationalError:
        return False
    finally:
        conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
    return bool(busy == 0)
