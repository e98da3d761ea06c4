"""Opaque keyset cursors for task listings."""

import base64
import json
from datetime import datetime

from agent_fleet.codec import parse_ts, ts
from agent_fleet.domain.errors import InvalidInput
from agent_fleet.domain.task import Task


def encode_cursor(task: Task) -> str:
    raw = json.dumps([ts(task.created_at), task.task_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, task_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return parse_ts(created), str(task_id)
    except (ValueError, TypeError, UnicodeError) as e:
        raise InvalidInput("cursor", "not a cursor this server issued") from e
