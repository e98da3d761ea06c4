"""A stand-in agent CLI that spends and fails: each run writes a failed receipt reporting
usage (as `claude -p --output-format json` reports cost), the way an expensive, stuck
model would: $0.60 and 4000 tokens a run."""

import json
import os
import sys
from pathlib import Path


def main() -> int:
    sys.stdin.read()
    cost, tokens = 0.6, 4000
    print(
        f"attempt {os.environ['AGENT_FLEET_ATTEMPT']}: spent ${cost} and {tokens} tokens",
        flush=True,
    )
    receipt = {
        "status": "failed",
        "summary": "could not make the tests pass",
        "error": "tests still fail",
        "usage": {"tokens": tokens, "cost_usd": cost},
    }
    Path(os.environ["AGENT_FLEET_RECEIPT_FILE"]).write_text(json.dumps(receipt))
    return 1


if __name__ == "__main__":
    sys.exit(main())
