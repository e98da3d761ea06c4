"""The docs cannot drift from the code: every API route and config key is documented."""

import re
from datetime import UTC, datetime
from pathlib import Path

from agent_fleet.api.auth import AuthConfig
from agent_fleet.app import create_app
from agent_fleet.config import Settings
from agent_fleet.services.context import Context
from agent_fleet.services.fleet import Fleet
from agent_fleet.store.signal import AsyncioTaskSignal
from agent_fleet.store.sqlite import SqliteEventStore

DOCS = Path(__file__).resolve().parents[2] / "docs"


class _Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def test_every_openapi_operation_is_in_the_http_reference(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "unused.db")  # never opened: the schema is static
    fleet = Fleet.assemble(Context(store=store, clock=_Clock(), signal=AsyncioTaskSignal()))
    spec = create_app(fleet, AuthConfig(), store_name="sqlite").openapi()
    reference = (DOCS / "agent-api-reference.md").read_text()
    documented = set(re.findall(r"^\| `(/[^`]*)` \| ([A-Z /]+) \|", reference, re.MULTILINE))
    pairs = {(path, m.strip()) for path, methods in documented for m in methods.split("/")}
    missing = [
        f"{method.upper()} {path}"
        for path, operations in spec["paths"].items()
        for method in operations
        if (path, method.upper()) not in pairs
    ]
    assert missing == []
    assert len(spec["paths"]) >= 14


def test_every_config_key_is_in_the_configuration_reference() -> None:
    reference = (DOCS / "configuration.md").read_text()
    sections = {
        "server": Settings.model_fields["server"].annotation,
        "forgejo": Settings.model_fields["forgejo"].annotation,
        "orchestrator": Settings.model_fields["orchestrator"].annotation,
    }
    missing = [
        f"{section}.{key}"
        for section, model in sections.items()
        for key in model.model_fields  # type: ignore[union-attr]
        if f"| {section} | `{key}` |" not in reference
    ]
    assert missing == []
