"""Answer only requests addressed to us: the `Host` header check that stops DNS rebinding.

A web page can point its own domain at 127.0.0.1 and then script requests to
our API from the operator's browser; the browser sends that domain as `Host`.
Requests whose Host is not one of ours get 421 before any route runs.

Always answered: `localhost` and any IP address literal. Rebinding needs a name
the attacker controls; a page can only make the browser send an IP address as
Host when the page itself came from that address, i.e. from us. So agents and
health checks may reach us by whichever address the machine has.
"""

import ipaddress
import json
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send


@dataclass(frozen=True, slots=True)
class AllowedHosts:
    """Host names we answer to besides `localhost` and IP addresses: exact names,
    `*.example.com` for a domain's subdomains, or `*` for any host at all."""

    names: frozenset[str]

    @classmethod
    def of(cls, *names: str | None) -> "AllowedHosts":
        return cls(frozenset(_normal(n) for n in names if n and n.strip()))

    def permits(self, host_header: str) -> bool:
        host = _normal(_without_port(host_header))
        if host == "localhost" or _is_ip(host) or "*" in self.names or host in self.names:
            return True
        return any(n.startswith("*.") and host.endswith(n[1:]) for n in self.names)


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
