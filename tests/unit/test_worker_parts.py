"""Pure parts of the agent: secret scrubbing, workspace paths, the receipt outbox."""

from pathlib import Path

import pytest

from agent_fleet.execution.workspace import safe_name, workspace_for
from agent_fleet.scrub import Scrubber
from agent_fleet.worker.outbox import Outbox


def test_scrubber_masks_known_values_and_token_shapes() -> None:
    scrub = Scrubber.from_environment(
        {"MY_API_TOKEN": "tok-1234567890", "HOME": "/root", "DB_PASSWORD": "pw-abcdefgh"},
        extra=["registry-secret-xyz"],
    ).scrub
    text = (
        "token tok-1234567890 pw-abcdefgh registry-secret-xyz home /root "
        "ghp_abcdefghijklmnopqrstuvwxyz0123 sk-ant-abcdefghijklmnopqrstu "
        "Authorization: Bearer abcdefghijklmnopqrstuvwxyz https://bot:hunter2hunter2@git.example/x"
    )
    out = scrub(text)
    for secret in (
        "tok-1234567890",
        "pw-abcdefgh",
        "registry-secret-xyz",
        "ghp_abcdef",
        "sk-ant-abc",
        "abcdefghijklmnopqrstuvwxyz",
        "hunter2",
    ):
        assert secret not in out
    assert "/root" in out and "https://bot:[redacted]@git.example/x" in out


def test_short_values_are_not_treated_as_secrets() -> None:
    assert Scrubber(["abc"]).scrub("abc abc") == "abc abc"


@pytest.mark.parametrize("task_id", ["../../etc", "a/b", "..", "", "x\x00y", "/abs"])
def test_workspaces_stay_inside_the_work_dir(tmp_path: Path, task_id: str) -> None:
    ws = workspace_for(tmp_path, task_id, 2)
    assert tmp_path.resolve() in ws.root.parents
    assert "/" not in safe_name(task_id) and safe_name(task_id) not in ("", ".", "..")
    assert ws.root.name == "attempt-2"


def test_outbox_survives_and_forgets(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox")
    path = box.put("t/1", 0, {"status": "completed"})
    (tmp_path / "outbox" / "bad.json").write_text("{oops")
    pending = Outbox(tmp_path / "outbox").pending()
    assert [(p.name, r) for p, r in pending] == [("t_1.0.json", {"status": "completed"})]
    assert (tmp_path / "outbox" / "bad.corrupt").exists()
    Outbox.done(path)
    assert Outbox(tmp_path / "outbox").pending() == []
