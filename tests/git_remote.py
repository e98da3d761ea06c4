"""Real git remotes for tests: bare repositories served over `file://`, over the test sshd
(`ssh://`), and over HTTP by git's own `git http-backend` behind Basic auth with a token
(as Forgejo takes one), so pushes with a token go through the real credential path."""

from __future__ import annotations

import base64
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"
IDENTITY = ["-c", "user.name=Seed", "-c", "user.email=seed@example.com"]


def git(*args: str, cwd: Path | None = None, check: bool = True) -> str:
    done = subprocess.run(
        ["git", *IDENTITY, *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {done.stderr}")
    return done.stdout.strip()


def make_origin(root: Path, repo: str, files: dict[str, str] | None = None) -> Path:
    """A bare repository `<root>/<owner>/<name>.git` whose `main` holds `files`."""
    origin = root / f"{repo}.git"
    seed = root / ".seed" / repo
    git("init", "-q", "--bare", "-b", "main", str(origin))
    git("init", "-q", "-b", "main", str(seed))
    for name, text in (files or {"README.md": "widgets\n"}).items():
        (seed / name).parent.mkdir(parents=True, exist_ok=True)
        (seed / name).write_text(text)
    git("add", ".", cwd=seed)
    git("commit", "-qm", "seed", cwd=seed)
    git("push", "-q", str(origin), "HEAD:refs/heads/main", cwd=seed)
    return origin


def push_commit(origin: Path, branch: str, name: str, text: str, work: Path) -> str:
    """Someone else's commit on `branch` (a person pushing while the agent works)."""
    if not work.exists():
        git("clone", "-q", str(origin), str(work))
    git("fetch", "-q", "origin", cwd=work)
    has_branch = git("ls-remote", str(origin), f"refs/heads/{branch}")
    git(
        "checkout",
        "-q",
        "-B",
        branch,
        f"origin/{branch}" if has_branch else "origin/main",
        cwd=work,
    )
    (work / name).write_text(text)
    git("add", ".", cwd=work)
    git("commit", "-qm", f"a person's change to {name}", cwd=work)
    git("push", "-q", "origin", f"HEAD:refs/heads/{branch}", cwd=work)
    return git("rev-parse", "HEAD", cwd=work)


def refuse_pushes(origin: Path, message: str) -> None:
    hook = origin / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\necho '{message}' >&2\nexit 1\n")
    hook.chmod(0o755)


def branch_sha(origin: Path, branch: str) -> str | None:
    out = git(
        "--git-dir", str(origin), "rev-parse", "--verify", "-q", f"refs/heads/{branch}", check=False
    )
    return out or None


class _Handler(BaseHTTPRequestHandler):
    server: _GitHttpServer

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, *args: object) -> None:
        self.server.requests.append(self.requestline)

    def _serve(self) -> None:
        expected = base64.b64encode(f"{self.server.user}:{self.server.token}".encode()).decode()
        if self.headers.get("Authorization") != f"Basic {expected}":
            self.server.refused += 1
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        env = {
            **os.environ,
            "GIT_PROJECT_ROOT": str(self.server.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": self.server.user,
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
        }
        done = subprocess.run([HTTP_BACKEND], input=body, capture_output=True, env=env, check=False)
        head, _, payload = done.stdout.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.decode("latin-1").split("\r\n"):
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.strip().split()[0])
            elif key:
                headers.append((key, value.strip()))
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _GitHttpServer(ThreadingHTTPServer):
    def __init__(self, root: Path, user: str, token: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root, self.user, self.token = root, user, token
        self.refused = 0
        self.requests: list[str] = []


@contextmanager
def git_http(root: Path, user: str, token: str) -> Iterator[_GitHttpServer]:
    """Serve the bare repositories under `root` at http://127.0.0.1:<port>/ until exit."""
    server = _GitHttpServer(root, user, token)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def http_url(server: _GitHttpServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"
