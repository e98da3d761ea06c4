"""Webhook verification and parsing against Forgejo's real payloads and headers."""

import hashlib
import hmac
import json

import pytest

from agent_fleet.domain.errors import InvalidInput, Unauthorized
from agent_fleet.forgejo import webhooks as fw
from agent_fleet.ports.forge import IssueEvent, PullRequestEvent
from agent_fleet.services.webhooks import read_labels
from tests.paths import WEBHOOKS

FIXTURES = WEBHOOKS
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
SECRET = MANIFEST["secret_used_for_signatures"]
DELIVERIES = MANIFEST["deliveries"]


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


@pytest.mark.parametrize("delivery", DELIVERIES, ids=[d["file"] for d in DELIVERIES])
def test_every_real_delivery_verifies_and_parses(delivery: dict) -> None:  # type: ignore[type-arg]
    body = (FIXTURES / delivery["file"]).read_bytes()
    assert hashlib.sha256(body).hexdigest() == delivery["body_sha256"]
    headers = lower(delivery["headers"])
    fw.verify_signature(body, headers, SECRET)
    gitea_only = {k: v for k, v in headers.items() if not k.startswith("x-forgejo-signature")}
    fw.verify_signature(body, gitea_only, SECRET)
    parsed = fw.parse(headers["x-forgejo-event"], body)
    if headers["x-forgejo-event"] in ("issues", "pull_request"):
        assert parsed is not None and parsed.action == delivery["action"]
        event = fw.to_event(parsed)
        assert event.repo == "acme/widgets"
    else:
        assert parsed is None  # issue_comment: acknowledged, not acted on


def test_signatures_are_checked_exactly() -> None:
    body = (FIXTURES / "issues_label_updated.json").read_bytes()
    good = "43fc8b3d3fcc18e9912f50aba21692794831273fd39c680e4b9b47b33efb1965"
    fw.verify_signature(body, {"x-forgejo-signature": good}, SECRET)
    fw.verify_signature(body, {"x-gitea-signature": "sha256=" + good.upper()}, SECRET)
    for bad in (
        {},
        {"x-forgejo-signature": ""},
        {"x-forgejo-signature": "sha256="},
        {"x-forgejo-signature": good[:-1] + "0"},
    ):
        with pytest.raises(Unauthorized):
            fw.verify_signature(body, bad, SECRET)
    with pytest.raises(Unauthorized):
        fw.verify_signature(body + b"\n", {"x-forgejo-signature": good}, SECRET)
    rfc4231 = hmac.new(b"Jefe", b"what do ya want for nothing?", hashlib.sha256).hexdigest()
    fw.verify_signature(b"what do ya want for nothing?", {"x-forgejo-signature": rfc4231}, "Jefe")


def test_events_carry_what_we_act_on() -> None:
    opened = fw.parse("pull_request", (FIXTURES / "pull_request_opened.json").read_bytes())
    merged = fw.parse("pull_request", (FIXTURES / "pull_request_closed_merged.json").read_bytes())
    labels = fw.parse("issues", (FIXTURES / "issues_label_updated.json").read_bytes())
    assert opened is not None and merged is not None and labels is not None
    pr = fw.to_event(opened)
    assert isinstance(pr, PullRequestEvent)
    assert (pr.branch, pr.number, pr.merged) == ("task/12-empty-export", 13, False)
    done = fw.to_event(merged)
    assert isinstance(done, PullRequestEvent) and done.merged and done.state == "closed"
    issue = fw.to_event(labels)
    assert isinstance(issue, IssueEvent)
    assert (issue.number, issue.labels, issue.is_pull) == (12, ("bug", "task"), False)


def test_labels_name_capabilities_and_priority() -> None:
    wanted = read_labels(("bug", "agent:code:rust", "agent:docs", "priority:high", "agent:"))
    assert wanted.capabilities == ("code:rust", "docs") and wanted.priority == 10
    assert not read_labels(("bug",)).wants_agent


def test_malformed_payloads_are_clear_errors() -> None:
    with pytest.raises(InvalidInput, match="payload"):
        fw.parse("issues", b'{"action": "opened"}')
    with pytest.raises(InvalidInput):
        fw.parse("pull_request", b"not json")
