"""The test harness's own server start: a port someone else holds never stands in for ours."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests import processes
from tests.e2e.server import ServerProcess


class _Impostor(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def impostor() -> Iterator[int]:
    """Another test's server on a port: it answers /healthz with 200."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Impostor)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_server_whose_port_is_taken_starts_on_another(tmp_path: Path, impostor: int) -> None:
    with ServerProcess(tmp_path, port=impostor) as server:
        assert server.proc is not None
        assert server.port != impostor
        assert processes.listens(server.proc.pid, server.port)
        assert httpx.get(f"{server.url}/api/v1/tasks", timeout=30).json()["tasks"] == []
    assert "address already in use" in server.log_path.read_text()
