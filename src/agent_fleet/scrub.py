"""Removes secrets from text before it leaves us: the pull agent's logs and receipts, the
server's issue comments and pull requests (known secret values, and well-known token shapes)."""

import re
from collections.abc import Iterable, Mapping

MASK = "[redacted]"
MIN_SECRET_LEN = 8
_SECRET_ENV = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|_KEY|CREDENTIAL)", re.I)
#: Well-known token shapes, whoever they belong to.
_PATTERNS = [
    re.compile(r"(?i)\b(bearer|token)\s+[A-Za-z0-9._~+/=-]{16,}"),
    re.compile(r"\b(ghp|gho|ghs|ghu|github_pat)_[A-Za-z0-9_]{20,}"),
    re.compile(r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"(?i)(://[^/\s:@]+:)[^@\s/]+@"),  # a password inside a URL
]


class Scrubber:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted(
            {s for s in secrets if len(s) >= MIN_SECRET_LEN}, key=len, reverse=True
        )

    @classmethod
    def from_environment(cls, env: Mapping[str, str], extra: Iterable[str] = ()) -> "Scrubber":
        found = [value for name, value in env.items() if _SECRET_ENV.search(name)]
        return cls([*found, *extra])

    def add(self, secret: str) -> None:
        if len(secret) >= MIN_SECRET_LEN and secret not in self._secrets:
            self._secrets = sorted([*self._secrets, secret], key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        for pattern in _PATTERNS:
            text = pattern.sub(_masked, text)
        return text


def _masked(match: re.Match[str]) -> str:
    if match.re.pattern.startswith("(?i)(://"):
        return f"{match.group(1)}{MASK}@"
    if match.lastindex and match.re.pattern.startswith("(?i)\\b(bearer|token)"):
        return f"{match.group(1)} {MASK}"
    return MASK
