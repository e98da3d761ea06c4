"""Pure rules for task logs: what an appended chunk adds, given what is already stored."""

from dataclasses import dataclass

TRUNCATION_MARKER = "\n[agent-fleet: log truncated here: the limit of {limit} bytes was reached]\n"


@dataclass(frozen=True, slots=True)
class LogHead:
    length: int = 0  # bytes the agent has sent and we acknowledged
    stored: int = 0  # bytes kept
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class LogAppend:
    head: LogHead
    keep: bytes  # what to store, starting at the old `stored`


def plan_append(head: LogHead, offset: int, data: bytes, limit: int) -> LogAppend:
    """Chunks are idempotent by offset: a resent overlap is skipped, a gap is not filled.

    The reply's ack offset (`head.length`) tells the agent where to continue:
    after a gap it is less than what the agent sent, and the agent rewinds.
    """
    if offset > head.length:
        return LogAppend(head, b"")
    fresh = data[head.length - offset :]
    if not fresh:
        return LogAppend(head, b"")
    length = head.length + len(fresh)
    if head.truncated:
        return LogAppend(LogHead(length, head.stored, True), b"")
    room = limit - head.stored
    if len(fresh) <= room:
        return LogAppend(LogHead(length, head.stored + len(fresh), False), fresh)
    marker = TRUNCATION_MARKER.format(limit=limit).encode()
    keep = fresh[:room] + marker
    return LogAppend(LogHead(length, head.stored + len(keep), True), keep)
