"""The one place that picks concrete adapters from the settings and wires them.

Just over 300 lines: every setting that becomes a part is read here and nowhere else
(the store, the signal, the forge, the hosts and their slots, the app and its guards),
which is the point of the module.
"""

import getpass
import ipaddress
import os
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from fastapi import FastAPI

from agent_fleet.adapters.base import AgentAdapter
from agent_fleet.adapters.catalog import BUILT_IN, adapter_for
from agent_fleet.api.auth import AgentAuth, AuthConfig
from agent_fleet.api.hosts import AllowedHosts
from agent_fleet.api.limits import TextLimits
from agent_fleet.api.metrics import FleetMetrics
from agent_fleet.app import create_app
from agent_fleet.config import Settings
from agent_fleet.domain.budget import DailyBudgets, TaskBudget
from agent_fleet.domain.policies import RetryPolicy
from agent_fleet.execution.delivery import ssh_command
from agent_fleet.execution.shell import LocalShell, Shell
from agent_fleet.execution.ssh import SshShell, SshTarget
from agent_fleet.forgejo.client import ForgejoClient
from agent_fleet.hosts.runner import CommitAuthor, Host, HostRunner
from agent_fleet.ports.hosts import HostSlot
from agent_fleet.ports.signal import TaskSignal
from agent_fleet.ports.store import EventStore
from agent_fleet.scrub import Scrubber
from agent_fleet.services.comments import CommentOn
from agent_fleet.services.context import Context, FleetOptions
from agent_fleet.services.fleet import Fleet
from agent_fleet.store.opening import describe_url, open_store_url
from agent_fleet.store.postgres import PostgresEventStore
from agent_fleet.store.postgres_signal import PostgresTaskSignal
from agent_fleet.store.signal import AsyncioTaskSignal
from agent_fleet.store.sqlite import SqliteEventStore


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


async def open_store(settings: Settings) -> tuple[EventStore, str]:
    """Open (and migrate) the store the settings name; returns it with its kind."""
    return await open_store_url(settings.store_url)


def task_signal(store: EventStore) -> TaskSignal:
    if isinstance(store, PostgresEventStore):
        # The same origin as the store's NOTIFYs: a replica skips the notices it sent.
        return PostgresTaskSignal(store.url, store.origin)
    return AsyncioTaskSignal()


def describe_store(settings: Settings) -> str:
    """The store's address for humans: never with a password in it."""
    return describe_url(settings.store_url)


def fleet_options(settings: Settings) -> FleetOptions:
    orch = settings.orchestrator
    return FleetOptions(
        heartbeat_interval=timedelta(seconds=orch.heartbeat_interval_secs),
        heartbeat_threshold=orch.heartbeat_timeout_threshold,
        default_timeout=timedelta(seconds=orch.task_timeout_secs),
        default_max_retries=orch.default_max_retries,
        retry=RetryPolicy(
            base_delay=timedelta(seconds=orch.retry_backoff_base_secs),
            max_delay=timedelta(seconds=orch.retry_backoff_max_secs),
            budget=TaskBudget(
                max_cost_usd=orch.max_cost_usd_per_task, max_tokens=orch.max_tokens_per_task
            ),
        ),
        long_poll_max=timedelta(seconds=settings.server.long_poll_max_secs),
        sweep_interval=timedelta(seconds=orch.sweep_interval_secs),
        log_limit_bytes=settings.server.max_log_bytes,
        dispatch_interval=timedelta(seconds=orch.dispatch_interval_secs),
        ssh_poll_interval=timedelta(seconds=orch.ssh_poll_interval_secs),
        keep_failed_workspaces_days=orch.keep_failed_workspaces_days,
        keep_completed_workspaces=timedelta(hours=orch.keep_completed_workspaces_hours),
        reconcile_interval=timedelta(seconds=settings.forgejo.reconcile_interval_secs),
        max_review_rounds=settings.forgejo.max_review_rounds,
        daily_budgets=daily_budgets(settings.forgejo.daily_budget_usd or {}),
    )


def daily_budgets(table: dict[str, float]) -> DailyBudgets:
    """`"*"` is every repository's limit; named repositories (any case) have their own."""
    named = {repo.lower(): usd for repo, usd in table.items() if repo != "*"}
    return DailyBudgets(default=table.get("*"), per_repo=named)


def build_fleet(
    store: EventStore, settings: Settings, metrics: FleetMetrics | None = None
) -> Fleet:
    if metrics is not None:
        metrics.allow_agent_types(
            [
                *BUILT_IN,
                *settings.agent_types,
                *(a.agent_type for h in settings.hosts for a in h.agents),
            ]
        )
    ctx = Context(
        observe=metrics.observe if metrics else (lambda _events: None),
        forge=forge_client(settings),
        store=store,
        clock=SystemClock(),
        signal=task_signal(store),
        options=fleet_options(settings),
    )
    return Fleet.assemble(
        ctx,
        allowed_repos=settings.forgejo.allowed_repos,
        hosts=host_runner(settings) if settings.hosts else None,
        slots=host_slots(settings),
        comment_on=frozenset(CommentOn(step) for step in settings.forgejo.comment_on),
        scrub=Scrubber(secret_values(settings)).scrub,
        # SQLite: one orchestrator per file, so nothing else can be launching its runs.
        exclusive_store=isinstance(store, SqliteEventStore),
        public_url=public_url(settings),
    )


def secret_values(settings: Settings) -> list[str]:
    """Every configured secret: kept out of logs, comments and replies."""
    candidates = [
        settings.server.admin_token,
        settings.orchestrator.http_pull_token,
        settings.forgejo.token,
        settings.forgejo.webhook_secret,
    ]
    return [c.get_secret_value() for c in candidates if c is not None]


def host_slots(settings: Settings) -> list[HostSlot]:
    return [
        HostSlot(
            host_id=host.host_id,
            hostname=host.hostname,
            agent_type=agent.agent_type,
            capabilities=tuple(dict.fromkeys(agent.capabilities)),
            max_concurrency=agent.max_concurrency,
            idle_timeout=_seconds(settings.idle_timeout_secs(agent.agent_type)),
        )
        for host in settings.hosts
        for agent in host.agents
    ]


def _seconds(secs: float | None) -> timedelta | None:
    return None if secs is None else timedelta(seconds=secs)


def host_runner(settings: Settings) -> HostRunner:
    """The `[[hosts]]`: a local shell for `localhost`, else one SSH connection each."""
    hosts = []
    for host in settings.hosts:
        shell: Shell
        if host.hostname == "localhost":
            shell = LocalShell()
        else:
            shell = SshShell(
                SshTarget(
                    hostname=host.hostname,
                    port=host.ssh_port,
                    user=host.ssh_user,
                    key_path=host.ssh_key_path,
                    known_hosts=host.known_hosts,
                    connect_timeout=host.connect_timeout_secs,
                )
            )
        hosts.append(
            Host(
                host_id=host.host_id,
                shell=shell,
                work_dir=host.work_dir,
                git_ssh_command=ssh_command(host.git_ssh_key_path, host.git_known_hosts),
                as_root=runs_as_root(host.hostname, host.ssh_user),
            )
        )
    forgejo = settings.forgejo
    return HostRunner(
        hosts,
        server_url=public_url(settings),
        adapters=lambda agent_type: agent_type_adapter(settings, agent_type),
        git_base_url=forgejo.clone_url or forgejo.url,
        author=CommitAuthor(forgejo.commit_author_name, forgejo.commit_author_email),
    )


def agent_type_adapter(settings: Settings, agent_type: str) -> AgentAdapter:
    """The adapter of an agent type, as `[agent_types.<type>]` shapes it."""
    own = settings.agent_type(agent_type)
    return adapter_for(agent_type, own.command, sandbox=own.sandbox)


def runs_as_root(hostname: str, ssh_user: str | None) -> bool:
    """Whether a host's CLIs run as root: locally, as we do; over SSH, as the login user
    (asyncssh logs in as the local user when none is given)."""
    if hostname == "localhost":
        return os.geteuid() == 0
    return (ssh_user or getpass.getuser()) == "root"


def public_url(settings: Settings) -> str:
    server = settings.server
    if server.public_url:
        return server.public_url.rstrip("/")
    host = "127.0.0.1" if server.bind in ("0.0.0.0", "::", "") else server.bind  # noqa: S104
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{server.port}"


def forge_client(settings: Settings) -> ForgejoClient | None:
    """The Forgejo API client, when both its URL and token are configured."""
    forgejo = settings.forgejo
    if not forgejo.url or forgejo.token is None:
        return None
    return ForgejoClient(
        forgejo.url, forgejo.token.get_secret_value(), timeout_secs=forgejo.api_timeout_secs
    )


def build_app(
    fleet: Fleet, settings: Settings, store_name: str, metrics: FleetMetrics | None = None
) -> FastAPI:
    admin = settings.server.admin_token
    pull = settings.orchestrator.http_pull_token
    auth = AuthConfig(
        admin_token=admin.get_secret_value() if admin else None,
        http_pull_token=pull.get_secret_value() if pull else None,
        agent_auth=AgentAuth(settings.orchestrator.agent_auth),
    )
    return create_app(
        fleet,
        auth,
        store_name=store_name,
        max_body_bytes=settings.server.max_body_bytes,
        fleet_metrics=metrics,
        webhook_secret=secret.get_secret_value()
        if (secret := settings.forgejo.webhook_secret)
        else None,
        text_limits=TextLimits(
            event_text_bytes=settings.server.max_event_text_bytes,
            metadata_bytes=settings.server.max_metadata_bytes,
        ),
        allowed_hosts=allowed_hosts(settings),
    )


def allowed_hosts(settings: Settings) -> AllowedHosts:
    """The Host names we answer to: the bind address, public_url's host, `[server]
    allowed_hosts` (localhost and IP addresses always)."""
    server = settings.server
    public_host = urlsplit(server.public_url).hostname if server.public_url else None
    return AllowedHosts.of(server.bind, public_host, *server.allowed_hosts)


def open_to_the_network_without_tokens(settings: Settings) -> list[str]:
    """What is left unprotected when binding beyond loopback (the server warns loudly)."""
    if is_loopback(settings.server.bind):
        return []
    missing = []
    if settings.server.admin_token is None:
        missing.append("server.admin_token (operator actions are open)")
    if settings.orchestrator.http_pull_token is None:
        missing.append("orchestrator.http_pull_token (anyone can register an agent)")
    if settings.orchestrator.agent_auth == "original":
        missing.append(
            'orchestrator.agent_auth = "original" (register, heartbeat and complete take no token)'
        )
    return missing


def is_loopback(bind: str) -> bool:
    if bind == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return False
