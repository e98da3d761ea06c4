"""Receipt artifacts of any type are kept as given, within bounds; only `pr` is strict."""

import json

import pytest
from pydantic import TypeAdapter, ValidationError

from agent_fleet.api.schemas import ReceiptBody
from agent_fleet.domain.values import Artifact
from agent_fleet.hosts.runner import _read_written
from agent_fleet.wire import MAX_EXTRA_FIELDS, MAX_TEXT_CHARS, Artifacts

ARTIFACTS: TypeAdapter[Artifacts] = TypeAdapter(Artifacts)


def kept(*items: object) -> list[Artifact]:
    return [a.to_artifact() for a in ARTIFACTS.validate_python(list(items))]


def test_the_originals_types_and_unknown_ones_are_kept() -> None:
    assert kept(
        {"type": "pr", "url": "https://f.example/o/r/pulls/1"},
        {"type": "commit", "sha": "abc123", "branch": "task/1"},
        {"type": "branch", "name": "task/1", "sha": "abc123"},
        {"type": "file", "path": "docs/report.md"},
        {"type": "screenshot", "url": "https://cdn.example/s.png", "width": 1280, "dark": True},
    ) == [
        Artifact(type="pr", url="https://f.example/o/r/pulls/1"),
        Artifact(type="commit", sha="abc123", branch="task/1"),
        Artifact(type="branch", name="task/1", sha="abc123"),
        Artifact(type="file", path="docs/report.md"),
        Artifact(
            type="screenshot",
            url="https://cdn.example/s.png",
            extra={"width": 1280, "dark": True},
        ),
    ]


def test_bare_strings_are_file_paths_or_links_and_junk_items_are_dropped() -> None:
    assert kept("notes/a.txt", "https://ci.example/run/9", None, 42, ["x"]) == [
        Artifact(type="file", path="notes/a.txt"),
        Artifact(type="link", url="https://ci.example/run/9"),
    ]


def test_a_malformed_field_of_a_non_pr_artifact_is_dropped_not_refused() -> None:
    (artifact,) = kept(
        {
            "type": "commit",
            "sha": "not hex!",
            "url": "javascript:alert(1)",
            "path": "p" * (MAX_TEXT_CHARS + 500),
            "nested": {"deep": [1, 2]},
            "huge": 10**30,
            "inf": float("inf"),
            "bad key!": "x",
        }
    )
    assert artifact == Artifact(type="commit", path="p" * MAX_TEXT_CHARS)


def test_an_artifact_as_we_show_it_reads_back_the_same() -> None:
    shown = {"type": "shot", "url": None, "extra": {"width": 3, "tags": ["x"]}, "dpi": 2}
    assert kept(shown) == [Artifact(type="shot", extra={"width": 3, "dpi": 2})]


def test_extra_fields_are_bounded() -> None:
    many = {"type": "metrics", **{f"k{i}": i for i in range(MAX_EXTRA_FIELDS * 3)}}
    (artifact,) = kept(many)
    assert len(artifact.extra) == MAX_EXTRA_FIELDS
    (untyped,) = kept({"path": "x", "type": 7})
    assert untyped.type == "unknown"
    (long_type,) = kept({"type": "t" * 500})
    assert long_type.type == "t" * 64


@pytest.mark.parametrize(
    "pr",
    [{"type": "pr"}, {"type": "pr", "url": "javascript:alert(1)"}, {"type": "pr", "url": 7}],
)
def test_a_pr_without_an_http_url_refuses_the_receipt(pr: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="a pr artifact needs an http"):
        ReceiptBody.model_validate({"agent_id": "a", "status": "completed", "artifacts": [pr]})


def test_a_receipt_with_a_file_artifact_becomes_a_receipt() -> None:
    """Issue 18: `{"type": "file", "path": ...}` got 422 and the whole receipt was lost."""
    body = ReceiptBody.model_validate(
        {
            "task_id": "t1",
            "agent_id": "a",
            "status": "completed",
            "summary": "wrote the report",
            "artifacts": [{"type": "file", "path": "docs/report.md"}],
        }
    )
    receipt = body.to_receipt("t1")
    assert receipt.artifacts == (Artifact(type="file", path="docs/report.md"),)
    assert receipt.pr_urls() == ()
    assert (
        ReceiptBody.model_validate(
            {"agent_id": "a", "status": "completed", "artifacts": None}
        ).artifacts
        == []
    )


def test_a_receipt_file_written_on_a_host_keeps_unknown_artifacts() -> None:
    written = {
        "status": "completed",
        "summary": "done",
        "artifacts": [
            {"type": "pr", "url": "https://f.example/o/r/pulls/3"},
            {"type": "file", "path": "out.txt"},
        ],
    }
    result = _read_written(json.dumps(written).encode())
    assert result is not None
    assert result.summary == "done"
    assert [a.type for a in result.artifacts] == ["pr", "file"]
