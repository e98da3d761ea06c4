"""Shared fixtures: no process outlives its test; a fresh PostgreSQL database for this
test run, a schema per test; a real sshd for the session.

PostgreSQL tests run where a server answers (AGENT_FLEET_TEST_PG_URL, default
postgresql://postgres@127.0.0.1:5432/test). Outside CI they skip with the
reason when none does; in CI (CI=true) a missing server fails the run.
"""

import os
import secrets
import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING

import psycopg
import pytest

from tests import processes

if TYPE_CHECKING:
    from tests.sshd import SshServer

ADMIN_URL = os.environ.get("AGENT_FLEET_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(autouse=True)
def _no_process_outlives_its_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Outermost of every test's fixtures, so it runs after their finalisers: whatever
    they did not stop (a test that failed half-way, a run left detached) is killed here."""
    # Asked for first, so that tmp_path is torn down after this fixture, not before.
    root = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    left = processes.reap()
    if root is not None:
        left += processes.kill_strays(root)
    if left:
        request.node.add_report_section("teardown", "killed", "\n".join(left))


def _base(url: str) -> str:
    return url.rsplit("/", 1)[0]


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database created for this run and dropped after it."""
    name = f"agent_fleet_test_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as e:
        reason = f"PostgreSQL not reachable at {ADMIN_URL} ({str(e).strip()[:120]})"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI must run the PostgreSQL tests")
        pytest.skip(reason)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{_base(ADMIN_URL)}/{name}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """A fresh, empty schema in the run's database, as a connection URL."""
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return f"{pg_database}?options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator["SshServer"]:
    """A real sshd on a loopback port for the ssh_cli tests (skipped without OpenSSH
    outside CI; in CI a missing sshd fails the run)."""
    from tests.sshd import SSHD, SshServer

    if not os.access(SSHD, os.X_OK) or shutil.which("ssh-keygen") is None:
        reason = "OpenSSH server not installed (Debian: apt-get install openssh-server)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI must run the SSH tests")
        pytest.skip(reason)
    try:
        server = SshServer.start(tmp_path_factory.mktemp("sshd"))
    except RuntimeError as e:  # installed, but it will not run for this user here
        if os.environ.get("CI"):
            raise
        pytest.skip(f"sshd does not start here: {str(e).strip()[:300]}")
    yield server
    server.stop()
