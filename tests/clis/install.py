"""The real agent CLIs at pinned versions, installed once into a cache folder and reused.

    python -m tests.clis.install          # all three (what `make clis` runs)

Claude Code and Codex come from the npm registry (`npm install --prefix <dir>`), aider
from PyPI into a virtualenv of its own (it pins many packages). Each install is marked
done by a stamp file written only after the CLI answered `--version`, under a lock, so
concurrent test runs share one install and a second run costs a few stat calls. When
the registries cannot be reached, `Unreachable` says so (the tests skip with it).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

INSTALL_TIMEOUT_SECS = 900
PROBE_TIMEOUT_SECS = 60


@dataclass(frozen=True, slots=True)
class Pin:
    cli: str  # the agent type and the program's name
    registry: str  # "npm" or "pypi"
    package: str
    version: str

    @property
    def folder(self) -> str:
        return f"{self.cli}-{self.version}"


PINS = {
    "claude": Pin("claude", "npm", "@anthropic-ai/claude-code", "2.1.197"),
    "codex": Pin("codex", "npm", "@openai/codex", "0.171.0"),
    "aider": Pin("aider", "pypi", "aider-chat", "0.86.2"),
}


class Unreachable(Exception):
    """The package registry did not answer: nothing to test against."""


def cache_root() -> Path:
    configured = os.environ.get("AGENT_FLEET_CLI_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "agent-fleet" / "clis"


def bin_dir(pin: Pin, root: Path | None = None) -> Path:
    """Where the CLI's program is once installed."""
    home = (root or cache_root()) / pin.folder
    return home / ("node_modules/.bin" if pin.registry == "npm" else "bin")


def ensure(pin: Pin, root: Path | None = None) -> Path:
    """The CLI installed (now, or by an earlier run); its bin folder."""
    root = root or cache_root()
    home = root / pin.folder
    stamp = home / ".installed"
    if stamp.exists():
        return bin_dir(pin, root)
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / f".{pin.folder}.lock"):
        if not stamp.exists():  # another run may have finished it while we waited
            _probe_registry(pin)
            _install(pin, home)
            _check_version(pin, bin_dir(pin, root))
            stamp.write_text(f"{pin.package}=={pin.version}\n")
    return bin_dir(pin, root)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _probe_registry(pin: Pin) -> None:
    """Ask the registry about the pinned release: Unreachable when it does not answer."""
    if pin.registry == "npm":
        argv = ["npm", "view", f"{pin.package}@{pin.version}", "version"]
    else:
        argv = [sys.executable, "-m", "pip", "index", "versions", pin.package]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT_SECS)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Unreachable(f"{pin.registry} registry: {e}") from e
    if done.returncode != 0 or pin.version not in done.stdout:
        raise Unreachable(
            f"{pin.registry} registry has no {pin.package} {pin.version}: "
            f"{(done.stderr or done.stdout).strip()[-300:]}"
        )


def _install(pin: Pin, home: Path) -> None:
    if pin.registry == "npm":
        steps = [
            [
                "npm",
                "install",
                "--prefix",
                str(home),
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                f"{pin.package}@{pin.version}",
            ],
        ]
    else:
        python = home / "bin" / "python"
        steps = [
            [sys.executable, "-m", "venv", "--clear", str(home)],
            [str(python), "-m", "pip", "install", "--quiet", f"{pin.package}=={pin.version}"],
        ]
    for argv in steps:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_SECS)
        if done.returncode != 0:
            raise RuntimeError(
                f"installing {pin.package} {pin.version} failed ({' '.join(argv[:3])}):\n"
                f"{(done.stderr or done.stdout)[-2000:]}"
            )


def _check_version(pin: Pin, bins: Path) -> None:
    done = subprocess.run(
        [str(bins / pin.cli), "--version"], capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0 or pin.version not in done.stdout:
        raise RuntimeError(
            f"{pin.cli} --version after install said {done.stdout!r} {done.stderr[-500:]!r}"
        )


def main() -> None:
    for pin in PINS.values():
        try:
            where = ensure(pin)
        except Unreachable as e:
            print(f"skipped {pin.cli}: {e}", file=sys.stderr)
            continue
        print(f"{pin.cli} {pin.version}: {where}")


if __name__ == "__main__":
    main()
