"""The AGENT_FLEET_* variables an agent CLI gets (DESIGN §5), for both execution modes."""


def agent_environment(
    *,
    task_id: str,
    attempt: int,
    repo: str | None,
    branch: str,
    prompt_file: str,
    receipt_file: str,
    server_url: str,
    lease: str,
    agent_id: str,
    token: str,
) -> dict[str, str]:
    """`token` authorises the CLI's own `POST /api/v1/receipts`: a pull agent's registry
    token, or on an ssh_cli host (no registry token) the attempt's lease."""
    return {
        "AGENT_FLEET_TASK_ID": task_id,
        "AGENT_FLEET_ATTEMPT": str(attempt),
        "AGENT_FLEET_REPO": repo or "",
        "AGENT_FLEET_BRANCH": branch,
        "AGENT_FLEET_PROMPT_FILE": prompt_file,
        "AGENT_FLEET_RECEIPT_FILE": receipt_file,
        "AGENT_FLEET_URL": server_url,
        "AGENT_FLEET_LEASE": lease,
        "AGENT_FLEET_AGENT_ID": agent_id,
        "AGENT_FLEET_TOKEN": token,
    }
