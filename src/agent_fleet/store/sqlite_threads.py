"""The SQLite store's threads: one writer that group-commits, one reader beside it.

The blocking `sqlite3` driver never runs on the event loop. Writes that queue up
while a commit is on disk are **group-committed**: one `BEGIN IMMEDIATE … COMMIT`
(one fsync) carries them all, each inside its own savepoint (a write alone needs
none), so one that fails (a version conflict) is undone alone, and none is
answered before the commit is durable. Reads run on their own connection: in
WAL mode a reader never waits for a writer, so a foreign process holding the
write lock stalls writes (up to busy_timeout, then 503), never reads or `/healthz`.
"""

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from agent_fleet.domain.errors import StoreError

T = TypeVar("T")
MAX_GROUP = 64  # writes per group commit
Connect = Callable[[], sqlite3.Connection]
Guard = Callable[[], None]  # raises StoreError when the file is no longer ours
Tend = Callable[[sqlite3.Connection], None]  # the writer's upkeep between transactions


@dataclass(slots=True)
class _Job:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    loop: asyncio.AbstractEventLoop
    future: "asyncio.Future[Any]"
    write: bool  # runs inside the group's transaction, under its own savepoint

    def settle(self, ok: bool, value: Any) -> None:
        _settle_all(self.loop, [(self, ok, value)])

    def resolve(self, ok: bool, value: Any) -> None:
        """On the caller's loop."""
        if self.future.done():
            return  # the caller was cancelled meanwhile
        if ok:
            self.future.set_result(value)
        else:
            self.future.set_exception(value)


def _settle_all(loop: asyncio.AbstractEventLoop, outcomes: list[tuple[_Job, bool, Any]]) -> None:
    """Answer jobs of one loop with one wake-up of that loop, not one per job."""

    def _set() -> None:
        for job, ok, value in outcomes:
            job.resolve(ok, value)

    # A caller whose loop has closed waits for nothing; the store thread goes on.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_set)


def _answer(outcomes: list[tuple[_Job, bool, Any]]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, bool, Any]]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].loop, []).append(outcome)
    for loop, answers in by_loop.items():
        _settle_all(loop, answers)


class StoreThread:
    """One thread, one connection (opened on first use), a queue of jobs.

    `tend`, on the writer, runs after each group and whenever the queue has been
    idle for `tend_every_secs` (WAL checkpoints)."""

    def __init__(
        self,
        name: str,
        connect: Connect,
        guard: Guard,
        describe: str,
        tend: Tend | None = None,
        tend_every_secs: float = 1.0,
    ) -> None:
        self._name = name
        self._connect = connect
        self._guard = guard
        self._describe = describe
        self._tend = tend
        self._tend_every = tend_every_secs
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None

    async def submit(self, fn: Callable[..., T], args: tuple[Any, ...], write: bool) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            self._thread.start()
        self._jobs.put(_Job(fn, args, loop, future, write))
        return await future

    async def close(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            await asyncio.to_thread(self._thread.join)
            self._thread = None

    def _serve(self) -> None:
        waiting: deque[_Job | None] = deque()
        try:
            while True:
                job = waiting.popleft() if waiting else self._next()
                if job is None:
                    return
                if not job.write:
                    reads = [job]  # reads already queued run now, answered together
                    while len(reads) < MAX_GROUP:
                        try:
                            more = self._jobs.get_nowait()
                        except queue.Empty:
                            break
                        if more is None or more.write:
                            waiting.append(more)
                            break
                        reads.append(more)
                    self._alone(reads)
                    continue
                group = [job]
                while len(group) < MAX_GROUP:
                    try:
                        more = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if more is None or not more.write:
                        waiting.append(more)  # keeps its place: after this group
                        break
                    group.append(more)
                self._group(group)
                self._upkeep()
        finally:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _next(self) -> _Job | None:
        if self._tend is None:
            return self._jobs.get()
        while True:
            try:
                return self._jobs.get(timeout=self._tend_every)
            except queue.Empty:
                self._upkeep()

    def _upkeep(self) -> None:
        if self._tend is not None and self._conn is not None:
            with contextlib.suppress(sqlite3.Error, OSError):
                self._tend(self._conn)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _alone(self, jobs: list[_Job]) -> None:
        """Each job outside any group transaction; the answers go out together."""
        outcomes: list[tuple[_Job, bool, Any]] = []
        for job in jobs:
            try:
                conn = self._connection()
                self._guard()
                outcomes.append((job, True, job.fn(conn, *job.args)))
            except BaseException as e:
                outcomes.append((job, False, self._error(e)))
        _answer(outcomes)

    def _group(self, group: list[_Job]) -> None:
        try:
            conn = self._connection()
            self._guard()  # no transaction into a file that is gone
            conn.execute("BEGIN IMMEDIATE")
        except BaseException as e:
            for job in group:
                job.settle(False, self._error(e))
            return
        if len(group) == 1:
            self._one(conn, group[0])
            return
        outcomes: list[tuple[bool, Any]] = []
        try:
            for job in group:
                conn.execute("SAVEPOINT job")
                try:
                    value = job.fn(conn, *job.args)
                except BaseException as e:
                    conn.execute("ROLLBACK TO job")
                    outcomes.append((False, self._error(e)))
                else:
                    outcomes.append((True, value))
                conn.execute("RELEASE job")
            conn.execute("COMMIT")
            self._guard()  # committed into a file deleted meanwhile: acknowledge nothing
        except BaseException as e:  # the transaction itself failed: nothing was written
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for job in group:
                job.settle(False, self._error(e))
            return
        _answer([(job, ok, value) for job, (ok, value) in zip(group, outcomes, strict=True)])

    def _one(self, conn: sqlite3.Connection, job: _Job) -> None:
        """A group of one (most, unless writes queue up): no savepoint, since undoing the
        job is undoing the transaction: two statements fewer for each lone write."""
        try:
            value = job.fn(conn, *job.args)
            conn.execute("COMMIT")
            self._guard()  # committed into a file deleted meanwhile: acknowledge nothing
        except BaseException as e:
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            job.settle(False, self._error(e))
            return
        job.settle(True, value)

    def _error(self, e: BaseException) -> BaseException:
        if isinstance(e, sqlite3.Error | OSError):  # OSError: the file's directory is unusable
            error = StoreError(f"sqlite store at {self._describe}: {e}")
            error.__cause__ = e
            return error
        return e
