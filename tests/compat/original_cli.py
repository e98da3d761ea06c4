"""An agent CLI set up the original's way: `[adapters.NAME] cli_template` with `'{prompt}'`
and `{repo_path}` in it. It checks what Agent Fleet gives it there (the prompt file's
path, the workspace) and prints what it saw for the test to read in the task's log.
"""

import os
import sys
from pathlib import Path


def main() -> int:
    args = sys.argv[1:]
    prompt_arg = args[args.index("--prompt") + 1]
    workdir = args[args.index("--in") + 1]
    stdin = sys.stdin.read()
    if prompt_arg != os.environ["AGENT_FLEET_PROMPT_FILE"]:
        print(f"--prompt is not the prompt file: {prompt_arg!r}", flush=True)
        return 2
    if Path(workdir).resolve() != Path.cwd().resolve():
        print(f"--in is not the workspace: {workdir!r}", flush=True)
        return 2
    prompt = Path(prompt_arg).read_text()
    if prompt != stdin:
        print("stdin and the prompt file differ", flush=True)
        return 2
    print(f"argv<<{args}>>", flush=True)
    print(f"prompt<<{prompt}>>", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
