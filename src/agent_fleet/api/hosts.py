"""Answer only requests addressed to us: the `Host` header check that stops DNS rebinding.

A web page can point its own domain at 127.0.0.1 and then script requests to
our API from the operator's browser; the browser sends that domain as `Host`.
Requests whose Host is not one of ours get 421 before any route runs. An IP
address as Host cannot come from such a page (it would be our own origin), so
when we listen on every interface (0.0.0.0 or ::), any IP literal is accepted:
agents may reach us by whichever address the machine has.
"""

import ipaddress
import json
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

WILDCARD_BINDS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 (names, not a bind)
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True, slots=True)
class AllowedHosts:
    """Host names we answer to: exact names, `*.example.com` for a domain's subdomains,
    or `*` for any; `any_ip` also lets every IP address literal through."""

    names: frozenset[str]
    any_ip: bool = False

    @classmethod
    def of(cls, names: list[str], any_ip: bool = False) -> "AllowedHosts":
        return cls(frozenset(_normal(n) for n in names if n.strip()), any_ip)

    def permits(self, host_header: str) -> bool:
        host = _normal(_without_port(host_header))
        if "*" in self.names or host in self.names:
            return True
        if any(n.startswith("*.") and host.endswith(n[1:]) for n in self.names):
            return True
        return self.any_ip and _is_ip(host)


def default_hosts(bind: str, public_host: str | None) -> AllowedHosts:
    """The bind address, the loopback names and the public URL's host."""
    names = [*LOOPBACK_NAMES, *([public_host] if public_host else [])]
    if bind not in WILDCARD_BINDS:
        names.append(bind)
    return AllowedHosts.of(names, any_ip=bind in WILDCARD_BINDS)


def _without_port(host: str) -> str:
    host = host.strip()
    if host.startswith("["):  # [::1]:9090
        return host[1:].split("]", 1)[0]
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit() and ":" not in name:
        return name
    return host


def _normal(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class HostCheck:
    """A pure-ASGI guard: 421 Misdirected Request for a Host that is not ours."""

    def __init__(self, app: ASGIApp, allowed: AllowedHosts) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = dict(scope.get("headers", [])).get(b"host")
        # No Host at all (HTTP/1.0) cannot be a browser: rebinding always names a host.
        if raw is None or self.allowed.permits(raw.decode("latin-1")):
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {
                "error": "this server does not answer to that Host header; "
                "add the name to [server] allowed_hosts if it is yours",
                "code": "misdirected_request",
            }
        ).encode()
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 421, "headers": headers})
        await send({"type": "http.response.body", "body": body})
