"""A status report says `status` (the original's word) or `state` (ours)."""

import pytest
from pydantic import ValidationError

from agent_fleet.api.schemas import StatusBody


@pytest.mark.parametrize(
    "fields",
    [{"status": "running"}, {"state": "running"}, {"status": "running", "state": "running"}],
)
def test_either_word_reports_the_state(fields: dict[str, str]) -> None:
    assert StatusBody.model_validate({"agent_id": "a", **fields}).reported == "running"


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({}, "status \\(or state\\) is required"),
        ({"status": "running", "state": "failed"}, "status and state disagree"),
        ({"status": "completed"}, "status"),
    ],
)
def test_a_missing_or_contradictory_report_is_refused(fields: dict[str, str], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        StatusBody.model_validate({"agent_id": "a", **fields})
