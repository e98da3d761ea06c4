"""A Forgejo stand-in for end-to-end tests: a separate HTTP process serving just the
API calls Agent Fleet makes, with answers shaped from Forgejo's real payloads.

Every request is checked against Forgejo's API description (operation, query, body,
token) and so is every answer it gives; a mismatch is answered 422 and recorded, and
tests assert that none were. Tests set the scene and read what happened through
`/_standin/*`.

    python -m tests.forgejo_standin --port 8123 --token T [--git-root DIR]

With `--git-root`, the repositories are real bare repositories `DIR/<owner>/<repo>.git`
(what agents push to): a pull request can only be opened from a branch that exists
there, as in Forgejo.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.paths import WEBHOOKS
from tests.swagger_check import operation_for, request_problems, response_problems

_HOOKS = WEBHOOKS
_ISSUE_HOOK = json.loads((_HOOKS / "issues_label_updated.json").read_text())
_PR_HOOK = json.loads((_HOOKS / "pull_request_opened.json").read_text())
_COMMENT_HOOK = json.loads((_HOOKS / "issue_comment_created.json").read_text())


@dataclass
class Scene:
    base: str
    token: str
    permissions: dict[str, dict[str, str]] = field(default_factory=dict)  # repo → user → level
    issues: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    timelines: dict[str, dict[int, list[dict[str, Any]]]] = field(default_factory=dict)
    pulls: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    comments: dict[str, dict[int, list[dict[str, Any]]]] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    fail_next: int = 0
    comments_down: bool = False  # issue comments answer 500 (an outage of just those)
    delay_secs: float = 0.0  # answer this late (a Forgejo that times out)
    next_id: int = 1000
    default_branches: dict[str, str] = field(default_factory=dict)
    git_root: Path | None = None

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    # --- objects as Forgejo shapes them (from the real payloads) -------------------

    def user(self, login: str) -> dict[str, Any]:
        user = copy.deepcopy(_ISSUE_HOOK["sender"])
        user.update(id=abs(hash(login)) % 10_000, login=login, html_url=f"{self.base}/{login}")
        return user

    def repository(self, repo: str) -> dict[str, Any]:
        data = copy.deepcopy(_ISSUE_HOOK["repository"])
        owner, name = repo.split("/")
        data.update(name=name, full_name=repo, html_url=f"{self.base}/{repo}")
        data["owner"]["login"] = owner
        return data

    def label(self, name: str) -> dict[str, Any]:
        label = copy.deepcopy(_ISSUE_HOOK["issue"]["labels"][0])
        label.update(id=abs(hash(name)) % 10_000, name=name, description="")
        return label

    def issue(self, repo: str, number: int, title: str, body: str, labels: list[str]) -> None:
        issue = copy.deepcopy(_ISSUE_HOOK["issue"])
        issue.update(
            id=self.new_id(),
            number=number,
            title=title,
            body=body,
            labels=[self.label(n) for n in labels],
            html_url=f"{self.base}/{repo}/issues/{number}",
            url=f"{self.base}/api/v1/repos/{repo}/issues/{number}",
            state="open",
            pull_request=None,
        )
        self.issues.setdefault(repo, {})[number] = issue

    def labelled(self, repo: str, number: int, by: str, labels: list[str]) -> None:
        for name in labels:
            self.timelines.setdefault(repo, {}).setdefault(number, []).append(
                {
                    "id": self.new_id(),
                    "type": "label",
                    "body": "1",
                    "user": self.user(by),
                    "label": self.label(name),
                    "html_url": f"{self.base}/{repo}/issues/{number}",
                    "issue_url": f"{self.base}/{repo}/issues/{number}",
                    "created_at": "2026-01-01T00:00:00Z",
                    "updated_at": "2026-01-01T00:00:00Z",
                }
            )

    def pull(
        self,
        repo: str,
        number: int,
        branch: str,
        body: str,
        state: str,
        merged: bool,
        head_repo: str | None = None,
        title: str | None = None,
        base: str = "main",
    ) -> dict[str, Any]:
        pr = copy.deepcopy(_PR_HOOK["pull_request"])
        pr.update(
            id=self.new_id(),
            number=number,
            body=body,
            state=state,
            merged=merged,
            html_url=f"{self.base}/{repo}/pulls/{number}",
            url=f"{self.base}/{repo}/pulls/{number}",
        )
        if title is not None:
            pr["title"] = title
        # A fork's head: its own repository, and (as Forgejo sends it) the bare branch name.
        pr["head"].update(label=branch, ref=branch, repo=self.repository(head_repo or repo))
        pr["head"]["repo_id"] = pr["head"]["repo"]["id"] = abs(hash(head_repo or repo)) % 10_000
        pr["base"].update(label=base, ref=base, repo=self.repository(repo))
        self.pulls.setdefault(repo, {})[number] = pr
        return pr

    def next_number(self, repo: str) -> int:
        used = [*self.issues.get(repo, {}), *self.pulls.get(repo, {})]
        return max(used, default=0) + 1

    def has_branch(self, repo: str, branch: str) -> bool:
        if self.git_root is None:
            return True
        done = subprocess.run(
            [
                "git",
                "--git-dir",
                str(self.git_root / f"{repo}.git"),
                "rev-parse",
                "--verify",
                "-q",
                f"refs/heads/{branch}",
            ],
            capture_output=True,
            check=False,
        )
        return done.returncode == 0

    def comment(self, repo: str, number: int, text: str) -> dict[str, Any]:
        comment = copy.deepcopy(_COMMENT_HOOK["comment"])
        comment.update(
            id=self.new_id(),
            body=text,
            user=self.user("agent-fleet-bot"),
            html_url=f"{self.base}/{repo}/issues/{number}#issuecomment-{self.next_id}",
            issue_url=f"{self.base}/{repo}/issues/{number}",
            pull_request_url="",
        )
        self.comments.setdefault(repo, {}).setdefault(number, []).append(comment)
        return comment


def build_app(scene: Scene) -> Starlette:
    async def api(request: Request) -> Response:
        path = request.url.path
        method = request.method
        try:
            template, operation = operation_for(method, path)
        except AssertionError as e:
            scene.violations.append(str(e))
            return JSONResponse({"message": str(e)}, status_code=422)
        raw = await request.body()
        body = json.loads(raw) if raw else None
        problems = request_problems(operation, dict(request.query_params), body)
        if request.headers.get("authorization") != f"token {scene.token}":
            problems.append("missing or wrong token")
        if problems:
            scene.violations += [f"{method} {template}: {p}" for p in problems]
            return JSONResponse({"message": "; ".join(problems)}, status_code=422)
        scene.calls.append(f"{method} {template}")
        if scene.delay_secs:
            await asyncio.sleep(scene.delay_secs)
        if scene.fail_next > 0 or (scene.comments_down and template.endswith("/comments")):
            scene.fail_next = max(0, scene.fail_next - 1)
            return JSONResponse({"message": "stand-in: scripted failure"}, status_code=500)
        status, payload = answer(scene, method, template, path, request, body)
        payload = as_api(payload)
        if status < 400:
            scene.violations += [
                f"{method} {template} answer: {p}"
                for p in response_problems(operation, status, payload)
            ]
        return JSONResponse(payload, status_code=status)

    async def control(request: Request) -> Response:
        what = request.path_params["what"]
        if request.method == "GET":
            return JSONResponse(
                {
                    "violations": scene.violations,
                    "calls": scene.calls,
                    "comments": {
                        f"{repo}#{n}": [c["body"] for c in items]
                        for repo, by_number in scene.comments.items()
                        for n, items in by_number.items()
                    },
                    "pulls": {
                        repo: [
                            {
                                "number": n,
                                "head": pr["head"]["ref"],
                                "head_repo": pr["head"]["repo"]["full_name"],
                                "base": pr["base"]["ref"],
                                "title": pr["title"],
                                "body": pr["body"],
                                "state": pr["state"],
                                "merged": pr["merged"],
                            }
                            for n, pr in sorted(by_number.items())
                        ]
                        for repo, by_number in scene.pulls.items()
                    },
                }
            )
        data = await request.json()
        if what == "permission":
            scene.permissions.setdefault(data["repo"], {})[data["user"]] = data["level"]
        elif what == "issue":
            scene.issue(data["repo"], data["number"], data["title"], data["body"], data["labels"])
            scene.labelled(data["repo"], data["number"], data["labelled_by"], data["labels"])
        elif what == "pull":
            scene.pull(
                data["repo"],
                data["number"],
                data["branch"],
                data.get("body", ""),
                data.get("state", "open"),
                data.get("merged", False),
                data.get("head_repo"),
            )
        elif what == "default_branch":
            scene.default_branches[data["repo"]] = data["branch"]
        elif what == "fail":
            scene.fail_next = int(data["count"])
        elif what == "comments_down":
            scene.comments_down = bool(data["down"])
        elif what == "delay":
            scene.delay_secs = float(data["secs"])
        else:
            return JSONResponse({"message": f"unknown control {what}"}, status_code=404)
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/api/v1/{rest:path}", api, methods=["GET", "POST", "PATCH", "PUT", "DELETE"]),
            Route("/_standin/{what}", control, methods=["GET", "POST"]),
        ]
    )


def answer(
    scene: Scene, method: str, template: str, path: str, request: Request, body: Any
) -> tuple[int, Any]:
    parts = path.removeprefix("/api/v1/").split("/")
    missing = (404, {"message": "not found", "url": scene.base})
    if template == "/user/repos":
        repos = sorted(set(scene.issues) | set(scene.pulls) | set(scene.permissions))
        return 200, _page([scene.repository(r) for r in repos], request)
    repo = f"{parts[1]}/{parts[2]}"
    known = set(scene.issues) | set(scene.pulls) | set(scene.permissions)
    match template:
        case "/repos/{owner}/{repo}":
            if repo not in known | set(scene.default_branches):
                return missing
            data = scene.repository(repo)
            data["default_branch"] = scene.default_branches.get(repo, "main")
            return 200, data
        case "/repos/{owner}/{repo}/pulls" if method == "GET":
            wanted = request.query_params.get("state", "open")
            pulls = [
                pr
                for _, pr in sorted(scene.pulls.get(repo, {}).items())
                if wanted == "all" or pr["state"] == wanted
            ]
            return 200, _page(pulls, request)
        case "/repos/{owner}/{repo}/pulls":
            return _create_pull(scene, repo, body)
        case "/repos/{owner}/{repo}/collaborators/{collaborator}/permission":
            level = scene.permissions.get(repo, {}).get(parts[4])
            if level is None:
                return missing
            return 200, {"permission": level, "role_name": level, "user": scene.user(parts[4])}
        case "/repos/{owner}/{repo}/pulls/{index}":
            pr = scene.pulls.get(repo, {}).get(int(parts[4]))
            return (200, pr) if pr else missing
        case "/repos/{owner}/{repo}/issues":
            issues = list(scene.issues.get(repo, {}).values())
            if request.query_params.get("state", "open") == "open":
                issues = [i for i in issues if i["state"] == "open"]
            return 200, _page(issues, request)
        case "/repos/{owner}/{repo}/issues/{index}/timeline":
            number = int(parts[4])
            if number not in scene.issues.get(repo, {}):
                return missing
            return 200, _page(scene.timelines.get(repo, {}).get(number, []), request)
        case "/repos/{owner}/{repo}/issues/{index}/comments":
            number = int(parts[4])
            if number not in scene.issues.get(repo, {}):
                return missing
            if method == "POST":
                return 201, scene.comment(repo, number, str(body["body"]))
            return 200, scene.comments.get(repo, {}).get(number, [])
    return 404, {"message": f"stand-in does not implement {method} {template}"}


def _create_pull(scene: Scene, repo: str, body: dict[str, Any]) -> tuple[int, Any]:
    """As Forgejo: 404 without the head branch, 409 when an open PR has the same head and
    base, else the new PR (numbered with the repo's issues)."""
    head, base = str(body.get("head") or ""), str(body.get("base") or "")
    if not head or not base or not scene.has_branch(repo, head):
        return 404, {"message": "The target couldn't be found.", "url": scene.base}
    for pr in scene.pulls.get(repo, {}).values():
        own = pr["head"]["repo"]["full_name"] == repo
        if (
            own
            and pr["state"] == "open"
            and pr["head"]["ref"] == head
            and pr["base"]["ref"] == base
        ):
            message = f"pull request already exists for these targets [id: {pr['id']}]"
            return 409, {"message": message, "url": scene.base}
    number = scene.next_number(repo)
    pr = scene.pull(
        repo,
        number,
        head,
        str(body.get("body") or ""),
        "open",
        False,
        title=str(body.get("title") or ""),
        base=base,
    )
    return 201, pr


def as_api(value: Any) -> Any:
    """Webhook payloads add `username` to every user; the API's User has no such field."""
    if isinstance(value, list):
        return [as_api(item) for item in value]
    if isinstance(value, dict):
        return {
            k: as_api(v) for k, v in value.items() if not (k == "username" and "login" in value)
        }
    return value


def _page(items: list[Any], request: Request) -> list[Any]:
    page = int(request.query_params.get("page", 1))
    limit = int(request.query_params.get("limit", 30))
    return items[(page - 1) * limit : page * limit]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--git-root", type=Path, default=None)
    args = parser.parse_args()
    scene = Scene(base=f"http://127.0.0.1:{args.port}", token=args.token, git_root=args.git_root)
    uvicorn.run(build_app(scene), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
