"""A real OpenSSH `sshd` on a loopback port, with its own host key and one authorized key.

Started from Debian's openssh-server (`make test` installs it when run as root). The
client side gets a private key and a known_hosts file naming the server's host key,
so host-key verification stays on, exactly as in production.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests import processes
from tests.e2e.server import START_PATIENCE_SECS, free_port

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


@dataclass
class SshServer:
    root: Path
    port: int
    user: str
    key_path: Path
    known_hosts: Path
    proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls, root: Path, set_env: dict[str, str] | None = None) -> SshServer:
        """`set_env`: sshd's `SetEnv`, over the sessions' environment (HOME too)."""
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o700)
        _keygen(root / "host_key")
        _keygen(root / "client_key")
        (root / "authorized_keys").write_text((root / "client_key.pub").read_text())
        os.chmod(root / "authorized_keys", 0o600)
        port = free_port()
        (root / "sshd_config").write_text(
            "\n".join(
                [
                    f"Port {port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {root / 'host_key'}",
                    f"AuthorizedKeysFile {root / 'authorized_keys'}",
                    f"PidFile {root / 'sshd.pid'}",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PubkeyAuthentication yes",
                    "PermitRootLogin prohibit-password",
                    "UsePAM no",
                    "StrictModes no",
                    "MaxSessions 100",
                    "MaxStartups 100:30:200",
                    "LogLevel ERROR",
                    *(f"SetEnv {name}={value}" for name, value in (set_env or {}).items()),
                ]
            )
            + "\n"
        )
        host_pub = (root / "host_key.pub").read_text().split()
        known = root / "known_hosts"
        known.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
        server = cls(root, port, getpass.getuser(), root / "client_key", known)
        # Not processes.spawn: it serves the whole session, not one test (see stop).
        with (root / "sshd.log").open("ab") as log:
            server.proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(root / "sshd_config")],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        try:
            server._wait_listening()
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_listening(self) -> None:
        started = time.monotonic()
        while time.monotonic() - started < START_PATIENCE_SECS:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.root / 'sshd.log').read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5):
                    if processes.listens(self.proc.pid, self.port):  # not a stranger
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"sshd not listening after {START_PATIENCE_SECS:.0f}s")

    def stop(self) -> None:
        """TERM (KILL after a grace): sshd itself; the sessions it forked end with it."""
        if self.proc is not None:
            processes.stop(self.proc)


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def running(pid: int) -> bool:
    """Alive and not a zombie waiting for its reaper (which runs nothing)."""
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split()[2] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False
