"""The outside audit's transport findings, replayed as the attacks they were (issue 15).

3: connections that never finish their headers were held for ever, and under a
   low file limit a flood of them made /healthz time out and filled the log
   with EMFILE tracebacks;
4: every made-up HTTP method became a new /metrics series;
13: any Host header was answered (DNS rebinding).

Real sockets against a real `agent-fleet serve`; waits are bounded and report
what they saw.
"""

import http.client
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import ADMIN_TOKEN, ServerProcess

SLOW_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def _open_slow(port: int, count: int) -> list[socket.socket]:
    """`count` connections that start a request and never finish its headers."""
    opened = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(SLOW_REQUEST)
        opened.append(sock)
    return opened


def _is_open(sock: socket.socket) -> bool:
    """Still open: nothing to read yet (a reply or EOF means the server let go)."""
    sock.setblocking(False)
    try:
        return not sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)


def _read_to_eof(sock: socket.socket, deadline: float) -> bytes | None:
    """What the server sent before closing; None if it had not closed by `deadline`."""
    data = b""
    while True:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return None
        except OSError:
            return data
        if not chunk:
            return data
        data += chunk


def _read_response(sock: socket.socket) -> http.client.HTTPResponse:
    """One whole response, leaving the connection open for the next request."""
    reply = http.client.HTTPResponse(sock)
    reply.begin()
    reply.read()
    return reply


@contextmanager
def _trickling(socks: list[socket.socket]) -> Iterator[None]:
    """Keep sending one header byte per socket every 0.5 s (the classic slowloris)."""
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(0.5):
            for sock in socks:
                with suppress(OSError):
                    sock.send(b"x")

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


@contextmanager
def _running(server: ServerProcess) -> Iterator[ServerProcess]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_connections_that_never_finish_their_headers_are_closed(tmp_path: Path) -> None:
    """200 slowloris connections are closed with 408 within the header timeout, and
    /healthz answers while they are held."""
    timeout = 5.0  # the default header_timeout_secs
    with _running(ServerProcess(tmp_path)) as server:
        socks = _open_slow(server.port, 200)
        try:
            with _trickling(socks[::2]):
                opened = time.monotonic()
                reply = httpx.get(f"{server.url}/healthz", timeout=10)
                held_meanwhile = sum(_is_open(s) for s in socks)
                assert reply.status_code == 200
                assert held_meanwhile > 0, "the flood was already gone: nothing was tested"
                # Generous on a busy machine, far below the audit's "still open after 140 s".
                deadline = opened + timeout + 30
                replies = [_read_to_eof(s, deadline) for s in socks]
            still_open = sum(r is None for r in replies)
            assert still_open == 0, f"{still_open} of 200 still open {timeout + 30:g} s later"
            assert {r[:12] for r in replies if r is not None} == {b"HTTP/1.1 408"}
            assert time.monotonic() - opened >= timeout * 0.8, "closed before their time"
        finally:
            for sock in socks:
                sock.close()
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200


def test_a_flood_under_a_low_file_limit_keeps_healthz_and_the_log_intact(
    tmp_path: Path,
) -> None:
    """The audit held 1,100 such connections against the systemd unit's file limit: /healthz
    timed out for the whole hold and the log grew by 135 MB of EMFILE tracebacks."""
    server = ServerProcess(tmp_path, nofile=256, server={"header_timeout_secs": 30})
    with _running(server):
        log_before = server.log_path.stat().st_size
        socks: list[socket.socket] = []
        try:
            for _ in range(400):  # far more than 256 file descriptors
                try:
                    socks += _open_slow(server.port, 1)
                except OSError:
                    continue  # the listen queue was full for a moment: keep flooding
            assert len(socks) > 256, f"only {len(socks)} connections could be opened"
            answered = []
            for _ in range(5):
                started = time.monotonic()
                reply = httpx.get(f"{server.url}/healthz", timeout=10)
                answered.append((reply.status_code, round(time.monotonic() - started, 2)))
                socks += _open_slow(server.port, 20)  # and the flood goes on meanwhile
            assert [status for status, _ in answered] == [200] * 5, answered
        finally:
            for sock in socks:
                sock.close()
        log = server.log_path.read_bytes()[log_before:]
        assert b"Traceback" not in log
        assert len(log) < 64 * 1024, f"the log grew by {len(log)} bytes"
        assert b"closed the slowest connections to make room" in log


def test_a_body_or_a_second_request_that_never_finishes_is_cut_off(tmp_path: Path) -> None:
    """The same attack one step later: full headers and a body that never comes, or a
    kept-alive connection whose second request stalls half-way through its headers."""
    limits = {"header_timeout_secs": 2, "body_timeout_secs": 3}
    with _running(ServerProcess(tmp_path, server=limits)) as server:
        stalled_body = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        stalled_body.sendall(
            b"POST /api/v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        second = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        second.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first_reply = _read_response(second)
        assert first_reply.status == 200, first_reply.status
        second.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        deadline = time.monotonic() + 30
        for sock in (stalled_body, second):
            reply = _read_to_eof(sock, deadline)
            sock.close()
            assert reply is not None, "still open after 30 s"
            assert reply.startswith(b"HTTP/1.1 408"), reply
        assert httpx.get(f"{server.url}/api/v1/tasks", timeout=10).json()["tasks"] == []


# --- 4: /metrics labels ---------------------------------------------------------------


def test_a_flood_of_made_up_methods_does_not_grow_metrics(tmp_path: Path) -> None:
    with _running(ServerProcess(tmp_path)) as server:
        before = httpx.get(f"{server.url}/metrics", timeout=10).text
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            for n in range(300):
                conn.request(f"FLOOD{n}", "/healthz")
                reply = conn.getresponse()
                reply.read()
                assert 400 <= reply.status < 500
        finally:
            conn.close()
        after = httpx.get(f"{server.url}/metrics", timeout=10).text
    methods = set(re.findall(r'method="([^"]*)"', after))
    statuses = set(re.findall(r'status="([^"]*)"', after))
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    assert "other" in methods
    assert statuses <= {"1xx", "2xx", "3xx", "4xx", "5xx", "other"}
    # One series for the flood ("other", 4xx), not three hundred.
    assert len(after) - len(before) < 8 * 1024, f"/metrics grew by {len(after) - len(before)}"


# --- 13: Host headers -------------------------------------------------------------------


def test_a_request_for_a_foreign_host_changes_nothing(tmp_path: Path) -> None:
    """DNS rebinding: a page on attacker.example that resolves to 127.0.0.1."""
    with _running(ServerProcess(tmp_path)) as server:
        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        with httpx.Client(base_url=server.url, headers=auth, timeout=30) as client:
            for method, path in (("POST", "/api/v1/tasks"), ("GET", "/api/v1/tasks"), ("GET", "/")):
                reply = client.request(
                    method,
                    path,
                    json={"title": "t", "prompt": "p"},
                    headers={"Host": "attacker.example"},
                )
                assert reply.status_code == 421, (method, path, reply.status_code)
                assert reply.json()["code"] == "misdirected_request"
            assert client.get("/api/v1/tasks").json()["tasks"] == []
            for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}", "[::1]"):
                assert client.get("/healthz", headers={"Host": host}).status_code == 200, host


@pytest.mark.parametrize(
    ("settings", "ours", "foreign"),
    [
        ({"allowed_hosts": ["fleet.example.com"]}, "fleet.example.com", "other.example.com"),
        ({"public_url": "https://fleet.example.com"}, "fleet.example.com:443", "example.com"),
        ({"allowed_hosts": ["*.example.com"]}, "a.b.example.com", "example.com.evil"),
    ],
)
def test_the_allowed_hosts_are_configurable(
    tmp_path: Path, settings: dict[str, object], ours: str, foreign: str
) -> None:
    server = ServerProcess(tmp_path, server=settings)
    with _running(server), httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/healthz", headers={"Host": ours}).status_code == 200
        assert client.get("/healthz", headers={"Host": foreign}).status_code == 421
