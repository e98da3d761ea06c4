"""The SVG charts: outside names stay text, every mark carries the number it draws, and a
chart with nothing to draw says so."""

from xml.etree import ElementTree

import pytest

from agent_fleet.web import charts
from agent_fleet.web.charts import Series

HOSTILE = '"><script>alert(1)</script><x a="'


def parsed(svg: str) -> ElementTree.Element:
    """Well-formed XML or the test fails: nothing outside broke out of its attribute."""
    return ElementTree.fromstring(svg)  # noqa: S314 -- our own output, made by the test


def test_hostile_names_are_text_in_every_chart() -> None:
    drawn = [
        charts.bars(HOSTILE, HOSTILE, [(HOSTILE, 2.0, HOSTILE), ("plain", 1.0, "1")]),
        charts.lines(HOSTILE, "q", [HOSTILE, "b"], [Series(HOSTILE, [1.0, 2.0], "c1")]),
        charts.stacked("t", "o", ["a", HOSTILE], [Series(HOSTILE, [1, 3], "ok")], unit=HOSTILE),
    ]
    for svg in drawn:
        assert "<script>" not in svg
        root = parsed(svg)
        names = {el.get("data-key") for el in root.iter() if el.get("data-key")}
        series = {el.get("data-series") for el in root.iter() if el.get("data-series")}
        assert HOSTILE in names | series  # the value survives, as data


def test_marks_carry_their_values_and_keys() -> None:
    svg = charts.stacked(
        "Outcomes",
        "outcomes",
        ["10:00", "11:00"],
        [Series("completed", [2, 0], "ok"), Series("error", [1, 3], "c3")],
        keys=["2026-01-01T10:00:00Z", "2026-01-01T11:00:00Z"],
    )
    marks = [
        (el.get("data-series"), el.get("data-key"), el.get("data-value"))
        for el in parsed(svg).iter()
        if el.get("data-value")
    ]
    assert marks == [
        ("completed", "2026-01-01T10:00:00Z", "2"),
        ("error", "2026-01-01T10:00:00Z", "1"),
        ("error", "2026-01-01T11:00:00Z", "3"),
    ]  # a zero draws no bar


@pytest.mark.parametrize(
    "svg",
    [
        charts.lines("Queue", "queue-depth", ["a", "b"], [Series("waiting", [0, 0], "c1")]),
        charts.lines("Wait", "wait", ["a"], [Series("p50", [None], "c1")]),
        charts.stacked("Outcomes", "outcomes", [], []),
        charts.bars("Spend", "spend-by-repo", []),
    ],
)
def test_nothing_to_draw_says_so(svg: str) -> None:
    root = parsed(svg)
    texts = ["".join(el.itertext()) for el in root.iter() if el.get("class") == "empty-chart"]
    assert texts == ["No data in this window"]
    assert not [el for el in root.iter() if el.get("data-value")]
