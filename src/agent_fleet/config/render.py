"""How `config check` shows the effective settings: TOML-like text, every secret as `***`."""

import re
from typing import Any

from pydantic import BaseModel, SecretStr


def redacted(settings: BaseModel) -> dict[str, Any]:
    """The effective settings as plain data, every secret shown as `***`."""
    masked: dict[str, Any] = _mask(settings.model_dump(mode="python"))
    return masked


def _mask(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return "***"
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    if isinstance(value, str) and "://" in value and "@" in value:
        scheme, _, rest = value.partition("://")
        return f"{scheme}://***@{rest.split('@', 1)[1]}"  # a password inside a URL
    return value


def render_toml(data: dict[str, Any]) -> str:
    """Render the effective config as TOML-like text for `config check` (None as comments)."""
    lines: list[str] = []
    for section, body in data.items():
        if not body and section in ("hosts", "agent_types"):
            continue
        if isinstance(body, dict) and all(not isinstance(v, dict) for v in body.values()):
            lines += ["", f"[{section}]", *_pairs(body)]
        elif isinstance(body, dict):
            for name, sub in body.items():
                lines += ["", f"[{section}.{name}]", *_pairs(sub)]
        elif isinstance(body, list):
            for item in body:
                lines += ["", f"[[{section}]]", *_pairs(item)]
    return "\n".join(lines).strip() + "\n"


def _pairs(body: dict[str, Any]) -> list[str]:
    return [
        f"# {key} = (unset)" if value is None else f"{key} = {_value(value)}"
        for key, value in body.items()
    ]


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _key(key: str) -> str:
    """A bare TOML key when it may be one (`agent_type`), else quoted (`"acme/widgets"`)."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _value(key)
