"""Pure rules for task logs: what an appended chunk adds, given what is already stored."""

from dataclasses import dataclass

TRUNCATION_MARKER = "\n[agent-fleet: log truncated here: the limit of {limit} bytes was reached]\n"


@dataclass(frozen=True, slots=True)
class LogHead:
    length: int = 0  # bytes of the source (agent's output, run's file) acknowledged
    stored: int = 0  # bytes kept
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class LogAppend:
    head: LogHead
    keep: bytes  # what to store, starting at the old `stored`


def plan_append(
    head: LogHead, offset: int, data: bytes, limit: int, source_length: int | None = None
) -> LogAppend:
    """Chunks are idempotent by offset: a resent overlap is skipped, a gap is not filled.

    The reply's ack offset (`head.length`) tells the agent where to continue:
    after a gap it is less than what the agent sent, and the agent rewinds.

    Offsets and `length` count the bytes of the *source*. A chunk rewritten on its
    way (secrets redacted) says how many source bytes it stands for in
    `source_length`; it cannot be cut at a source offset, so it is taken whole at
    exactly the acknowledged length, or not at all (the ack says where to resume).
    """
    rewritten = source_length is not None and source_length != len(data)
    if offset > head.length or (rewritten and offset != head.length):
        return LogAppend(head, b"")
    if rewritten:
        assert source_length is not None
        fresh, covered = data, source_length
    else:
        fresh = data[head.length - offset :]
        covered = len(fresh)
    if not covered:
        return LogAppend(head, b"")
    length = head.length + covered
    if head.truncated:
        return LogAppend(LogHead(length, head.stored, True), b"")
    room = limit - head.stored
    if len(fresh) <= room:
        return LogAppend(LogHead(length, head.stored + len(fresh), False), fresh)
    marker = TRUNCATION_MARKER.format(limit=limit).encode()
    keep = fresh[:room] + marker
    return LogAppend(LogHead(length, head.stored + len(keep), True), keep)
