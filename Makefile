# The two commands a newcomer needs:   make run   ·   make test
# Each does its own set-up (a virtualenv in .venv with everything pinned by pyproject.toml).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test test-fast lint bench clean system-deps clis

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (found %s)" % sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## run: start the orchestrator on the embedded default (SQLite under data/, 127.0.0.1:9090)
run: $(STAMP)
	$(VENV)/bin/agent-fleet serve $(ARGS)

## test: the whole test suite (unit, contract, service, integration, end to end, reliability,
## browser, real agent CLIs)
## Test files run on TEST_WORKERS processes at once (pytest-xdist, a file's tests together): the
## suite mostly waits on real processes, so three workers fit two cores.
TEST_WORKERS ?= 3
test: $(STAMP) system-deps clis
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

## test-fast: the tiers that start no process (domain, store contract, services): for the
## edit-run loop, well under a minute; `make test` still runs everything
test-fast: $(STAMP)
	$(PY) -m pytest tests/unit tests/contract tests/service $(PYTEST_ARGS)

## clis: the real agent CLIs at the versions tests/clis pins (Claude Code and Codex from
## npm, aider from PyPI), installed once into ~/.cache/agent-fleet/clis (or
## $$AGENT_FLEET_CLI_CACHE) and reused; skipped with a note when a registry is unreachable
clis: $(STAMP)
	$(PY) -m tests.clis.install

## system-deps: Debian packages the tests use (Chromium for the dashboard, OpenSSH's sshd
## for ssh_cli), installed when root
system-deps:
	@{ command -v chromium && test -x /usr/sbin/sshd; } >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      chromium openssh-server openssh-client; \
	  else echo "note: install Debian's chromium and openssh-server to run the browser and SSH tests (they skip without them)"; fi; }

## lint: ruff, mypy --strict on src, import-linter's layer contracts
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy --strict src
	$(VENV)/bin/lint-imports

## bench: the benchmark suite (figures into bench/results/)
bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) -m bench $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
