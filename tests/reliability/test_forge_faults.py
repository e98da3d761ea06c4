"""Forgejo answering 500s: nothing is lost and nothing is done twice. The stand-in
(tests/forgejo_standin.py) fails the next N API calls on request."""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.forgejo import ForgejoStandIn
from tests.e2e.helpers import dequeue, register, task, wait_for
from tests.e2e.test_forgejo_flow import FORGE_TOKEN, REPO, RUST, clients, fleet_with
from tests.e2e.test_webhooks import deliver

#: Agents here do not heartbeat while they wait out the outage: give them time.
PATIENT = {"heartbeat_interval_secs": 30}
COMMENTS_READ = "GET /repos/{owner}/{repo}/issues/{index}/comments"
#: How long the stand-in sits on each call when told to stop answering.
DELAY_SECS = 40


@pytest.fixture
def forgejo(tmp_path: Path) -> Iterator[ForgejoStandIn]:
    standin = ForgejoStandIn.start(FORGE_TOKEN, tmp_path / "standin.log")
    standin.set("permission", repo=REPO, user="carol", level="write")
    standin.set(
        "issue",
        repo=REPO,
        number=12,
        title="Export is empty",
        body="",
        labels=[],
        labelled_by="carol",
    )
    yield standin
    report = standin.report()
    standin.stop()
    assert report["violations"] == []


def test_a_forge_outage_delays_work_but_loses_and_repeats_nothing(
    tmp_path: Path, forgejo: ForgejoStandIn
) -> None:
    # Issue comments are down from the start: the comments duty, which runs on its own
    # clock, must wait that outage out whatever else happens meanwhile.
    forgejo.set("comments_down", down=True)
    server = fleet_with(tmp_path, forgejo, orchestrator=PATIENT).start()
    faults = 0
    with clients(server) as (admin, puller):
        # The permission check fails: the delivery is not handled and not remembered,
        # so Forgejo's "redeliver" (same body, new id) is handled once it is back.
        forgejo.set("fail", count=1000)
        down = deliver(admin, "issues_label_updated.json", replace=RUST, delivery="d-1")
        faults += 1
        assert down.status_code == 502, down.text
        assert admin.get("/api/v1/tasks").json()["tasks"] == []
        forgejo.set("fail", count=0)
        up = deliver(admin, "issues_label_updated.json", replace=RUST, delivery="d-2")
        assert up.json()["status"] == "created"
        task_id = up.json()["task_id"]

        # The receipt cannot be checked: refused with 502, kept by the agent, sent again.
        register(puller, "rusty", ["code:rust"])
        got = dequeue(puller, "rusty")
        assert got is not None
        forgejo.set("pull", repo=REPO, number=13, branch=f"task/{task_id}", body="Closes #12")
        receipt = {
            "agent_id": "rusty",
            "lease": got[1],
            "status": "completed",
            "summary": "fixed",
            "artifacts": [{"type": "pr", "url": f"{forgejo.url}/{REPO}/pulls/13"}],
        }
        forgejo.set("fail", count=1000)
        refused = puller.post(f"/api/v1/tasks/{task_id}/complete", json=receipt)
        faults += 1
        assert refused.status_code == 502, refused.text
        assert refused.json()["code"] == "forge_unavailable"
        assert task(admin, task_id)["state"] == "assigned"  # nothing recorded
        forgejo.set("fail", count=0)
        accepted = puller.post(f"/api/v1/tasks/{task_id}/complete", json=receipt)
        assert accepted.json()["state"] == "review_pending"

        # Comments wait out their outage, then each is posted exactly once.
        faults += 1
        wait_for(
            lambda: COMMENTS_READ in forgejo.report()["calls"],
            what="the comments duty to try during the outage",
        )
        assert forgejo.comments(REPO, 12) == []  # nothing got through
        forgejo.set("comments_down", down=False)
        wait_for(lambda: len(forgejo.comments(REPO, 12)) >= 2, what="comments after the outage")
        server.stop()
        server.start()
        wait_for(lambda: "GET /user/repos" in forgejo.report()["calls"], what="reconcile pass")
        comments = forgejo.comments(REPO, 12)
    assert [c.split()[1] for c in comments] == ["Picked", "Pull"], comments
    print(f"forge faults: {faults} outages, nothing lost, {len(comments)} comments once each")


def test_a_forgejo_that_stops_answering_is_waited_out_not_hung_on(
    tmp_path: Path, forgejo: ForgejoStandIn
) -> None:
    server = fleet_with(tmp_path, forgejo, orchestrator=PATIENT, api_timeout_secs=0.5).start()
    with clients(server) as (admin, _puller):
        forgejo.set("delay", secs=DELAY_SECS)  # far longer than every call's timeout
        started = time.monotonic()
        slow = deliver(admin, "issues_label_updated.json", replace=RUST, delivery="s-1")
        waited = time.monotonic() - started
        assert slow.status_code == 502, slow.text  # timed out (3 tries of 0.5 s) ...
        assert waited < DELAY_SECS / 2, waited  # ... not hung on the first call
        assert admin.get("/api/v1/tasks").json()["tasks"] == []
        forgejo.set("delay", secs=0)
        again = deliver(admin, "issues_label_updated.json", replace=RUST, delivery="s-2")
        assert again.json()["status"] == "created"
        task_id = again.json()["task_id"]
        assert task(admin, task_id)["state"] == "created"
        assert forgejo.comments(REPO, 12) == []  # nothing to say yet
