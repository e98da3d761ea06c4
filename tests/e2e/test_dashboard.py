"""The dashboard in a real headless Chromium: tasks and agents shown, live updates,
user text escaped, and a failed task retried from the page. Screenshots are kept
in test-artifacts/ for people to look at."""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import create, dequeue, register, task
from tests.e2e.server import ADMIN_TOKEN

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PATIENCE_MS = 60_000
XSS = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>'


@pytest.fixture
def page() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        if os.environ.get("CI"):
            pytest.fail("CI needs Debian's chromium (make test installs it as root)")
        pytest.skip("no chromium here: `apt-get install chromium` to run the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            timeout=PATIENCE_MS,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            context = browser.new_context(viewport={"width": 1360, "height": 900})
            context.set_default_timeout(PATIENCE_MS)  # a starved machine renders slowly
            yield context.new_page()
        finally:
            browser.close()


def test_dashboard_shows_updates_live_and_retries(
    server: Any, admin: httpx.Client, puller: httpx.Client, page: Any
) -> None:
    register(puller, "laptop-claude", ["code:python"], slots=2)
    register(puller, "ci-runner", ["code:rust"])
    done = create(admin, "Fix the flaky IO test", ["code:python"])["task_id"]
    broken = create(admin, "Upgrade the parser", ["code:python"], max_retries=0)["task_id"]
    create(admin, XSS, ["code:rust"])
    for task_id, status in ((done, "completed"), (broken, "failed")):
        got = dequeue(puller, "laptop-claude")
        assert got is not None and got[0] == task_id
        puller.post(
            f"/api/v1/tasks/{got[0]}/complete",
            json={
                "agent_id": "laptop-claude",
                "lease": got[1],
                "status": status,
                "summary": "pinned the seed",
                "error": "tests fail" if status == "failed" else None,
            },
        )

    page.goto(server.url + "/")
    page.wait_for_selector("text=Fix the flaky IO test")
    assert page.locator(f"tr[data-task='{done}'] .badge").inner_text() == "completed"
    assert page.locator("tr[data-agent='laptop-claude']").count() == 1
    assert page.locator("tr[data-agent='ci-runner']").count() == 1
    # Hostile titles are text, never markup.
    assert page.get_by_text(XSS).count() == 1
    assert page.evaluate("window.__pwned") is None

    # A task created now appears without a reload.
    fresh = create(admin, "Added while you watch", [])["task_id"]
    page.wait_for_selector(f"tr[data-task='{fresh}']")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    # Retry the failed task from its page, with the admin token.
    page.goto(f"{server.url}/tasks/{broken}")
    page.fill("#admin-token", ADMIN_TOKEN)
    page.dispatch_event("#admin-token", "change")
    page.click("button[data-action='retry']")
    page.wait_for_selector("#flash:has-text('task is now created')")
    assert task(admin, broken)["state"] == "created"
    page.wait_for_selector("text=task.retried")
    page.screenshot(path=str(ARTIFACTS / "task.png"), full_page=True)


def test_actions_need_the_admin_token(server: Any, admin: httpx.Client, page: Any) -> None:
    task_id = create(admin, "Guarded", [])["task_id"]
    page.goto(f"{server.url}/tasks/{task_id}")
    page.click("button[data-action='cancel']")
    page.wait_for_selector("#flash:has-text('refused')")
    assert task(admin, task_id)["state"] == "created"


def test_operator_assigns_from_the_task_page(
    server: Any, admin: httpx.Client, puller: httpx.Client, page: Any
) -> None:
    register(puller, "chosen-one", ["x"])
    task_id = create(admin, "Pick me", ["y"])["task_id"]
    page.goto(f"{server.url}/tasks/{task_id}")
    page.fill("#admin-token", ADMIN_TOKEN)
    page.dispatch_event("#admin-token", "change")
    page.wait_for_selector("#assign-agent")
    page.fill("#assign-agent", "chosen-one")
    page.click("button[data-action='assign']")
    page.wait_for_selector("#flash:has-text('task is now assigned')")
    assert task(admin, task_id)["agent_id"] == "chosen-one"
