"""The insight page in a real headless Chromium: charts drawn with data and with none, every
number they draw equal to the report API's (and `agent-fleet report`'s) for the same
window, and outside names shown as text. Screenshots go to test-artifacts/."""

import json
from datetime import datetime
from typing import Any

import httpx

from tests.e2e.helpers import create, dequeue, register
from tests.e2e.server import ServerProcess
from tests.e2e.test_dashboard import ARTIFACTS
from tests.e2e.test_dashboard import page as page  # the Chromium fixture

CHARTS = ("queue-depth", "wait", "outcomes", "spend-by-day", "spend-by-repo", "spend-by-agent-type")
HOSTILE_HOST = '<img src=x onerror="window.__pwned=1">box'


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def marks(page: Any, chart: str) -> list[dict[str, str]]:
    """Every mark a chart drew, as its data attributes."""
    found: list[dict[str, str]] = page.eval_on_selector_all(
        f"svg[data-chart='{chart}'] [data-value]",
        "els => els.map(e => ({series: e.dataset.series || '', key: e.dataset.key,"
        " value: e.dataset.value}))",
    )
    return found


def by_bucket(items: list[dict[str, str]], series: str) -> dict[datetime, float]:
    return {when(m["key"]): float(m["value"]) for m in items if m["series"] == series}


def run(puller: httpx.Client, agent: str, status: str, usage: dict[str, Any] | None) -> str:
    got = dequeue(puller, agent)
    assert got is not None
    body = {"agent_id": agent, "lease": got[1], "status": status, "summary": "s", "error": "e"}
    if usage:
        body["usage"] = usage
    reply = puller.post(f"/api/v1/tasks/{got[0]}/complete", json=body)
    assert reply.status_code == 200, reply.text
    return got[0]


def a_busy_day(admin: httpx.Client, puller: httpx.Client) -> None:
    reply = puller.post(
        "/api/v1/agents/register",
        json={
            "agent_id": "laptop",
            "agent_type": "claude",
            "hostname": HOSTILE_HOST,
            "capabilities": ["py"],
            "max_concurrency": 4,
        },
    )
    assert reply.status_code == 200, reply.text
    register(puller, "ci-box", ["rs"], slots=4)  # agent type e2e, no hostname
    for n in range(3):
        create(admin, f"python {n}", ["py"], repo="acme/widgets", max_retries=0)
    create(admin, "rust", ["rs"], repo="acme/gadgets", max_retries=0)
    create(admin, "waiting", ["nobody-has-this"])
    run(puller, "laptop", "completed", {"tokens": 1200, "cost_usd": 0.12})
    run(puller, "laptop", "completed", {"tokens": 800, "cost_usd": 0.08})
    run(puller, "laptop", "failed", {"tokens": 500, "cost_usd": 0.05})
    run(puller, "ci-box", "failed", {"tokens": 3000})


def test_the_charts_draw_the_reports_numbers(
    server: ServerProcess, admin: httpx.Client, puller: httpx.Client, page: Any
) -> None:
    a_busy_day(admin, puller)
    page.goto(server.url + "/insight?since=24h")
    page.wait_for_selector("svg[data-chart='outcomes'] rect[data-value]")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "insight.png"), full_page=True)
    assert page.evaluate("window.__pwned") is None
    assert page.get_by_text(HOSTILE_HOST).count() == 1  # the host table shows it as text

    until = page.get_attribute(".report", "data-until")
    assert until is not None
    report = admin.get("/api/v1/report", params={"since": "24h", "until": until}).json()
    assert (report["completed"], report["failed"], report["attempts"]) == (2, 2, 4)

    for stat in ("tasks_created", "attempts", "completed", "failed", "queue_depth"):
        assert page.inner_text(f"[data-stat='{stat}']") == str(report[stat]), stat
    buckets = {when(b["start"]): b for b in report["buckets"]}
    queue = by_bucket(marks(page, "queue-depth"), "waiting")
    assert queue == {start: b["queue_depth"] for start, b in buckets.items()}
    wait = marks(page, "wait")
    assert by_bucket(wait, "p50") == {
        start: b["wait"]["p50"] for start, b in buckets.items() if b["wait"]["count"]
    }
    assert by_bucket(wait, "p95") == {
        start: b["wait"]["p95"] for start, b in buckets.items() if b["wait"]["count"]
    }
    outcomes = marks(page, "outcomes")
    assert by_bucket(outcomes, "completed") == {
        start: b["completed"] for start, b in buckets.items() if b["completed"]
    }
    assert by_bucket(outcomes, "error") == {
        start: b["failed"]["error"] for start, b in buckets.items() if b["failed"]
    }
    repos = {m["key"]: float(m["value"]) for m in marks(page, "spend-by-repo")}
    assert repos == {r["name"]: r["cost_usd"] for r in report["spend_by_repo"]}
    types = {m["key"]: float(m["value"]) for m in marks(page, "spend-by-agent-type")}
    assert types == {r["name"]: r["cost_usd"] for r in report["spend_by_agent_type"]}
    days = {m["key"]: float(m["value"]) for m in marks(page, "spend-by-day")}
    assert days == {r["name"]: r["cost_usd"] for r in report["spend_by_day"] if r["cost_usd"]}
    table = page.eval_on_selector_all(
        "table[data-breakdown='agent-type'] tr[data-name]",
        "rows => rows.map(r => [r.dataset.name, r.cells[1].innerText])",
    )
    assert table == [[b["name"], str(b["tasks"])] for b in report["by_agent_type"]]
    # The marks are really drawn: Chromium gave them size on the page.
    box = page.locator("svg[data-chart='outcomes'] rect[data-value]").first.bounding_box()
    assert box is not None and box["width"] > 0 and box["height"] > 0


def test_agent_fleet_report_prints_the_same_numbers(
    server: ServerProcess, admin: httpx.Client, puller: httpx.Client
) -> None:
    a_busy_day(admin, puller)
    printed = server.cli("report", "--since", "24h", "--json", "--server", server.url)
    assert printed.returncode == 0, printed.stderr
    report = json.loads(printed.stdout)
    again = admin.get("/api/v1/report", params={"since": "24h", "until": report["until"]})
    assert again.json() == report
    assert report["spend"] == {"name": "total", "tokens": 5500, "cost_usd": 0.25}
    assert report["failures"] == {"error": 2}
    table = server.cli("report", "--since", "24h", "--server", server.url)
    assert table.returncode == 0, table.stderr
    assert "acme/widgets" in table.stdout and "$0.2500" in table.stdout
    refused = server.cli("report", "--since", "forever", "--server", server.url)
    assert refused.returncode != 0 and "since" in refused.stderr


def test_the_charts_of_an_empty_fleet_say_there_is_no_data(
    server: ServerProcess, page: Any
) -> None:
    page.goto(server.url + "/insight?since=1h")
    page.wait_for_selector("svg[data-chart='queue-depth']")
    for chart in CHARTS:
        drawn = page.locator(f"svg[data-chart='{chart}']")
        assert drawn.count() == 1, chart
        note = drawn.locator(".empty-chart")  # SVG text: its content, and drawn on the page
        assert note.text_content() == "No data in this window" and note.is_visible(), chart
        assert drawn.locator("[data-value]").count() == 0, chart
    assert page.inner_text("[data-stat='completed']") == "0"
    assert page.inner_text("[data-stat='success_rate']") == "—"
    page.click("nav.windows >> text=last 7d")
    page.wait_for_selector(".report[data-window='7d']")
    page.screenshot(path=str(ARTIFACTS / "insight-empty.png"), full_page=True)


def test_the_task_page_shows_spend_per_attempt_and_the_total(
    server: ServerProcess, admin: httpx.Client, puller: httpx.Client, page: Any
) -> None:
    register(puller, "worker", [])
    task_id = create(admin, "Try twice", [], max_retries=1)["task_id"]
    run(puller, "worker", "failed", {"tokens": 1500, "cost_usd": 0.3, "output_tokens": 500})
    run(puller, "worker", "failed", None)  # the second attempt reported nothing
    page.goto(f"{server.url}/tasks/{task_id}")
    page.wait_for_selector("[data-spend] table.attempts")
    assert page.get_attribute("[data-spend]", "data-spend") == "1500 0.3"
    assert "1,500 tokens · $0.3000 across 2 attempts" in page.inner_text("[data-spend]")
    rows = page.eval_on_selector_all(
        "table.attempts tr[data-attempt]", "rows => rows.map(r => r.innerText.split('\\t'))"
    )
    assert [r[:4] for r in rows] == [
        ["0", "worker", "1,500", "— / 500"],
        ["1", "worker", "not reported"],
    ]
    page.screenshot(path=str(ARTIFACTS / "task-spend.png"), full_page=True)
