"""The dashboard's insight page: the fleet report of a window drawn as SVG charts."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from agent_fleet import __version__
from agent_fleet.codec import ts
from agent_fleet.domain.report import FleetReport, SpendRow
from agent_fleet.services.fleet import Fleet
from agent_fleet.services.insight import window_length
from agent_fleet.web import charts
from agent_fleet.web.charts import PALETTE, Series
from agent_fleet.web.routes import templates

router = APIRouter(include_in_schema=False)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.1f}s"


templates.env.filters["percent"] = _percent
templates.env.filters["duration"] = _duration
WINDOWS = ("1h", "24h", "7d")
Since = Annotated[str, Query(max_length=8)]


def _fleet(request: Request) -> Fleet:
    fleet: Fleet = request.app.state.fleet
    return fleet


@router.get("/insight", response_class=HTMLResponse)
async def insight_page(request: Request, since: Since = "24h") -> HTMLResponse:
    context = await _context(_fleet(request), since)
    return templates.TemplateResponse(request, "insight.html", {**context, "version": __version__})


@router.get("/ui/insight", response_class=HTMLResponse)
async def insight_fragment(request: Request, since: Since = "24h") -> HTMLResponse:
    context = await _context(_fleet(request), since)
    return templates.TemplateResponse(request, "_insight.html", context)


async def _context(fleet: Fleet, since: str) -> dict[str, Any]:
    report = await fleet.insight.report(window_length(since))
    return {
        "report": report,
        "since": since,
        "windows": WINDOWS,
        "charts": draw(report),
        "failure_classes": failure_classes(report),
    }


def bucket_labels(report: FleetReport) -> list[str]:
    shape = "%m-%d" if report.bucket_secs >= 86400 else "%H:%M"
    return [b.start.strftime(shape) for b in report.buckets]


def draw(report: FleetReport) -> dict[str, Markup]:
    """Every chart of the page, from the report alone."""
    labels = bucket_labels(report)
    keys = [ts(b.start) for b in report.buckets]  # what the report's JSON says
    buckets = report.buckets
    reasons = list(report.failures)
    return {
        "queue": charts.lines(
            "Queue depth (tasks waiting)",
            "queue-depth",
            labels,
            [Series("waiting", [b.queue_depth for b in buckets], "c1")],
            keys=keys,
        ),
        "wait": charts.lines(
            "Wait from created to assigned (seconds)",
            "wait",
            labels,
            [
                Series("p50", [b.wait.p50 for b in buckets], "c1"),
                Series("p95", [b.wait.p95 for b in buckets], "c3"),
            ],
            unit="s",
            keys=keys,
        ),
        "outcomes": charts.stacked(
            "Completed and failed (by reason)",
            "outcomes",
            labels,
            [
                Series("completed", [b.completed for b in buckets], "ok"),
                *(
                    Series(reason, [b.failed.get(reason, 0) for b in buckets], _bad(n))
                    for n, reason in enumerate(reasons)
                ),
            ],
            keys=keys,
        ),
        "spend_by_day": _spend_days(report.spend_by_day),
        "spend_by_repo": _spend_bars("Spend by repository", "spend-by-repo", report.spend_by_repo),
        "spend_by_agent_type": _spend_bars(
            "Spend by agent type", "spend-by-agent-type", report.spend_by_agent_type
        ),
    }


def failure_classes(report: FleetReport) -> dict[str, str]:
    """The legend: each failure reason's colour class, as the outcomes chart uses it."""
    return {reason: _bad(n) for n, reason in enumerate(report.failures)}


def _bad(n: int) -> str:
    return PALETTE[(n + 2) % len(PALETTE)]


def _priced(rows: tuple[SpendRow, ...]) -> bool:
    return any(r.cost_usd > 0 for r in rows)


def _spend_days(rows: tuple[SpendRow, ...]) -> Markup:
    """USD per UTC day; tokens when no receipt carried a price."""
    names = [r.name[5:] for r in rows]  # MM-DD
    days = [r.name for r in rows]
    if _priced(rows):
        series = Series("USD", [r.cost_usd for r in rows], "c2")
        return charts.stacked("Spend per day (USD)", "spend-by-day", names, [series], keys=days)
    series = Series("tokens", [r.tokens for r in rows], "c2")
    return charts.stacked("Spend per day (tokens)", "spend-by-day", names, [series], keys=days)


def _spend_bars(title: str, chart: str, rows: tuple[SpendRow, ...]) -> Markup:
    if _priced(rows):
        return charts.bars(
            f"{title} (USD)",
            chart,
            [(r.name, r.cost_usd, f"${r.cost_usd:,.2f} · {r.tokens:,} tok") for r in rows],
        )
    return charts.bars(
        f"{title} (tokens)", chart, [(r.name, float(r.tokens), f"{r.tokens:,} tok") for r in rows]
    )
