"""Receipts waiting for delivery, kept on disk so that neither a server outage nor an
agent restart loses one; each is removed once the server has answered it."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_fleet.execution.workspace import safe_name


@dataclass(frozen=True, slots=True)
class Outbox:
    folder: Path

    def put(self, task_id: str, attempt: int, receipt: dict[str, Any]) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{safe_name(task_id)}.{int(attempt)}.json"
        temp = path.with_suffix(".tmp")
        temp.write_text(json.dumps(receipt), encoding="utf-8")
        temp.replace(path)  # atomic: a crash leaves the old file or the new, never half
        return path

    def pending(self) -> list[tuple[Path, dict[str, Any]]]:
        if not self.folder.exists():
            return []
        out = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                out.append((path, json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError):
                path.rename(path.with_suffix(".corrupt"))
        return out

    @staticmethod
    def done(path: Path) -> None:
        path.unlink(missing_ok=True)
