"""Log chunks are idempotent by offset, gaps are not filled, the size limit is marked."""

from agent_fleet.domain.logbook import LogHead, plan_append


def test_append_resend_and_gap() -> None:
    first = plan_append(LogHead(), 0, b"hello ", limit=100)
    assert first.head == LogHead(6, 6, False) and first.keep == b"hello "
    resent = plan_append(first.head, 0, b"hello ", limit=100)
    assert resent.head == first.head and resent.keep == b""
    overlap = plan_append(first.head, 3, b"lo world", limit=100)
    assert overlap.keep == b"world" and overlap.head.length == 11
    gap = plan_append(overlap.head, 50, b"later", limit=100)
    assert gap.head == overlap.head and gap.keep == b""


def test_limit_truncates_once_with_a_marker_and_keeps_acking() -> None:
    head = plan_append(LogHead(), 0, b"x" * 8, limit=10).head
    cut = plan_append(head, 8, b"abcdef", limit=10)
    assert cut.keep.startswith(b"ab\n[agent-fleet: log truncated here")
    assert cut.head.truncated and cut.head.length == 14
    after = plan_append(cut.head, 14, b"more", limit=10)
    assert after.keep == b"" and after.head.length == 18 and after.head.stored == cut.head.stored


def test_a_rewritten_chunk_counts_its_source_bytes_and_is_taken_whole_or_not_at_all() -> None:
    """ssh_cli logs: offsets are the run's file bytes; the stored text has the lease redacted."""
    first = plan_append(LogHead(), 0, b"lease=[redacted]\n", limit=100, source_length=39)
    assert first.head == LogHead(39, 17, False) and first.keep == b"lease=[redacted]\n"
    after = plan_append(first.head, 39, b"line 1\n", limit=100, source_length=7)
    assert after.head == LogHead(46, 24, False) and after.keep == b"line 1\n"
    overlap = plan_append(after.head, 30, b"[redacted]\nline 1\nline 2\n", 100, source_length=37)
    assert overlap.head == after.head and overlap.keep == b""  # cannot be cut: the ack says 46
    gap = plan_append(after.head, 60, b"x", limit=100, source_length=9)
    assert gap.head == after.head
