"""An agent's CLI version, sent with its registration, is shown on the dashboard's agent
list (escaped, bounded) and in the API."""

import httpx

from tests.e2e.server import ServerProcess


def test_the_cli_version_shows_on_the_agent_list(
    server: ServerProcess, puller: httpx.Client, anonymous: httpx.Client
) -> None:
    for agent_id, version in [
        ("with-version", "2.1.197 (Claude Code)"),
        ("hostile", "<script>alert(1)</script>" + "x" * 500),
    ]:
        reply = puller.post(
            "/api/v1/agents/register",
            json={
                "agent_id": agent_id,
                "agent_type": "claude",
                "capabilities": [],
                "max_concurrency": 1,
                "metadata": {"cli": "claude", "cli_version": version},
            },
        )
        assert reply.status_code == 200, reply.text
    page = anonymous.get("/ui/agents").text
    assert "2.1.197 (Claude Code)" in page
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert "x" * 200 not in page  # bounded
    agents = anonymous.get("/api/v1/agents").json()["agents"]
    found = {a["agent_id"]: a["metadata"].get("cli_version") for a in agents}
    assert found["with-version"] == "2.1.197 (Claude Code)"
