"""`agent-fleet report` and the spend tables of `agent-fleet tasks`: the fleet's numbers at a
terminal, read from the server's report (the same one the dashboard's charts draw)."""

from typing import Any

import click
from rich.console import Console
from rich.table import Table

from agent_fleet.cli.client import emit, json_option, request, server_option, token_option


def money(usd: float | None) -> str:
    return "-" if usd is None else f"${usd:,.4f}"


def spend_text(spend: dict[str, Any] | None) -> str:
    """`12,345 tok · $0.1234` (tokens and USD summed over the task's attempts)."""
    if not spend:
        return "-"
    return f"{spend['tokens']:,} tok · {money(spend['cost_usd'])}"


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.1f}s"
    if value < 7200:
        return f"{value / 60:.1f}m"
    return f"{value / 3600:.1f}h"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


@click.command("report")
@server_option
@token_option
@json_option
@click.option(
    "--since", default="7d", show_default=True, help="How far back: 90m, 24h, 7d, 2w (UTC)."
)
def report_command(server: str, token: str | None, as_json: bool, since: str) -> None:
    """Tasks, success rate, wait and run times, failures and spend over a window."""
    data = request("GET", server, "/api/v1/report", token, params={"since": since})
    emit(data, as_json, lambda console: render_report(console, data))


def render_report(console: Console, r: dict[str, Any]) -> None:
    console.print(f"[bold]Fleet report[/bold] {r['since']} → {r['until']}")
    summary = Table("TASKS", "ATTEMPTS", "COMPLETED", "FAILED", "CANCELLED", "SUCCESS", "QUEUED")
    summary.add_row(
        str(r["tasks_created"]),
        str(r["attempts"]),
        str(r["completed"]),
        str(r["failed"]),
        str(r["cancelled"]),
        percent(r["success_rate"]),
        str(r["queue_depth"]),
    )
    console.print(summary)
    times = Table("TIME", "P50", "P95", "COUNT")
    for name, key in (("wait (created → assigned)", "wait"), ("run (assigned → result)", "run")):
        q = r[key]
        times.add_row(name, seconds(q["p50"]), seconds(q["p95"]), str(q["count"]))
    console.print(times)
    if r["failures"]:
        failures = Table("FAILURE REASON", "COUNT")
        for reason, count in r["failures"].items():
            failures.add_row(reason, str(count))
        console.print(failures)
    for title, key in (("AGENT TYPE", "by_agent_type"), ("HOST", "by_host")):
        if r[key]:
            rows = Table(title, "TASKS", "COMPLETED", "FAILED", "SUCCESS", "MEDIAN RUN")
            for b in r[key]:
                rows.add_row(
                    b["name"],
                    str(b["tasks"]),
                    str(b["completed"]),
                    str(b["failed"]),
                    percent(b["success_rate"]),
                    seconds(b["median_run_secs"]),
                )
            console.print(rows)
    console.print(f"spend: {spend_text(r['spend'])}")
    for title, key in (
        ("DAY (UTC)", "spend_by_day"),
        ("REPOSITORY", "spend_by_repo"),
        ("AGENT TYPE", "spend_by_agent_type"),
    ):
        if r[key]:
            rows = Table(title, "TOKENS", "USD")
            for row in r[key]:
                rows.add_row(row["name"], f"{row['tokens']:,}", money(row["cost_usd"]))
            console.print(rows)


def attempts_table(spend: dict[str, Any]) -> Table:
    """One row per attempt with the usage its receipt reported, then the total."""
    table = Table("ATTEMPT", "AGENT", "TOKENS", "INPUT", "OUTPUT", "CACHE R/W", "USD")
    for a in spend["attempts"]:
        usage = a["usage"] or {}
        cache = f"{usage.get('cache_read_tokens') or 0}/{usage.get('cache_write_tokens') or 0}"
        table.add_row(
            str(a["attempt"]),
            a["agent_id"],
            f"{a['spend']['tokens']:,}" if a["usage"] else "not reported",
            _count(usage.get("input_tokens")),
            _count(usage.get("output_tokens")),
            cache if a["usage"] else "-",
            money(usage.get("cost_usd")),
        )
    table.add_row(
        "total", "", f"{spend['spend']['tokens']:,}", "", "", "", money(spend["spend"]["cost_usd"])
    )
    return table


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"
