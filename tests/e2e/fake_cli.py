"""A stand-in agent CLI for end-to-end tests (the real ones need a model).

It follows the contract of DESIGN §5: the prompt on stdin and in the prompt file,
the AGENT_FLEET_* variables, a receipt file it may write. Words in the prompt
choose what it does: FAIL, SLEEP <secs>, HANG <secs> (silent), RECEIPT, POST, LEAK, LEASE, LIST,
ECHO, PIDFILE <path>, WAIT <path> (until that file exists: the test says when it ends),
EDIT, COMMIT, GITENV. POST sends its receipt to the API itself (as
DESIGN §5 allows) and then exits 1. EDIT changes files in the workspace without committing
(what most CLIs leave); COMMIT then commits them itself, as aider does.
"""

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def main() -> int:
    # As bytes: an issue's text holds "\r\n", which text mode would translate on one side.
    prompt = sys.stdin.buffer.read().decode()
    from_file = Path(os.environ["AGENT_FLEET_PROMPT_FILE"]).read_bytes().decode()
    assert prompt == from_file, "stdin and the prompt file differ"
    words = prompt.split()
    print(f"task {os.environ['AGENT_FLEET_TASK_ID']} attempt {os.environ['AGENT_FLEET_ATTEMPT']}")
    print(f"cwd {os.getcwd()} branch {os.environ['AGENT_FLEET_BRANCH']}", flush=True)
    if "ECHO" in words:
        print(f"prompt<<{prompt}>>", flush=True)
    if "LEASE" in words:  # its own credential, from its environment, into its output
        print(f"lease={os.environ['AGENT_FLEET_LEASE']}", flush=True)
    if "PIDFILE" in words:
        Path(words[words.index("PIDFILE") + 1]).write_text(str(os.getpid()))
    if "SLEEP" in words:
        seconds = float(words[words.index("SLEEP") + 1])
        deadline = time.monotonic() + seconds
        step = 0
        while time.monotonic() < deadline:
            print(f"working step {step}", flush=True)
            step += 1
            time.sleep(0.2)
    if "HANG" in words:
        time.sleep(float(words[words.index("HANG") + 1]))  # no output at all: a stall
    if "WAIT" in words:
        gate = Path(words[words.index("WAIT") + 1])
        step = 0
        while not gate.exists():
            print(f"waiting step {step}", flush=True)
            step += 1
            time.sleep(0.2)
    if "LIST" in words:
        head = Path(".git/HEAD").read_text().strip() if Path(".git/HEAD").exists() else "-"
        print(f"files {sorted(p.name for p in Path('.').iterdir())} head {head}", flush=True)
    if "EDIT" in words:
        attempt = os.environ["AGENT_FLEET_ATTEMPT"]
        with Path("README.md").open("a") as readme:
            readme.write(f"edited by attempt {attempt}\n")
        Path(f"fix-{attempt}.txt").write_text("the fix\n")
        print(f"edited README.md and fix-{attempt}.txt", flush=True)
    if "COMMIT" in words:
        identity = ["-c", "user.name=The CLI", "-c", "user.email=cli@example.com"]
        subprocess.run(["git", *identity, "add", "-A"], check=True)
        subprocess.run(["git", *identity, "commit", "-qm", "the CLI's own commit"], check=True)
    if "GITENV" in words:
        names = ("AGENT_FLEET_GIT_TOKEN", "GIT_ASKPASS", "GIT_SSH_COMMAND")
        print(f"git credentials in my environment: {[n for n in names if n in os.environ]}")
    if "LEAK" in words:
        print(f"the key is {os.environ.get('MY_API_TOKEN')}", flush=True)
    if "FAIL" in words:
        print("tests failed: 3 errors", flush=True)
        return 3
    if "RECEIPT" in words:
        receipt = {
            "status": "completed",
            "summary": "opened a pull request",
            "artifacts": [{"type": "pr", "url": "https://forge.example/o/r/pulls/42"}],
            "usage": {"tokens": 321, "cost_usd": 0.01},
        }
        Path(os.environ["AGENT_FLEET_RECEIPT_FILE"]).write_text(json.dumps(receipt))
    if "POST" in words:
        return post_receipt()
    print("all done", flush=True)
    return 0


def post_receipt() -> int:
    """The receipt over HTTP with AGENT_FLEET_LEASE; the exit status must not matter then."""
    env = os.environ
    body = {
        "task_id": env["AGENT_FLEET_TASK_ID"],
        "agent_id": env["AGENT_FLEET_AGENT_ID"],
        "lease": env["AGENT_FLEET_LEASE"],
        "status": "completed",
        "summary": "posted by the CLI itself",
    }
    request = urllib.request.Request(  # noqa: S310 -- our own server's URL
        f"{env['AGENT_FLEET_URL']}/api/v1/receipts",
        data=json.dumps(body).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {env['AGENT_FLEET_TOKEN']}",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310
        print(f"receipt posted: {reply.status}", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
