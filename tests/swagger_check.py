"""Forgejo's own API description (tests/fixtures/forgejo/swagger.v1.json) as a checker:
which operation a request is, whether its query and body are allowed, and whether a
response body has the declared shape. Used by the client tests and the stand-in."""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

from tests.paths import FORGEJO

SWAGGER: dict[str, Any] = json.loads((FORGEJO / "swagger.v1.json").read_text())
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


@cache
def _templates() -> list[tuple[re.Pattern[str], str]]:
    return [(re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", t) + "$"), t) for t in SWAGGER["paths"]]


def operation_for(method: str, path: str) -> tuple[str, dict[str, Any]]:
    """The (template, operation) of a request path under /api/v1; AssertionError if none."""
    path = path.removeprefix("/api/v1")
    for pattern, template in _templates():
        operations = SWAGGER["paths"][template]
        if pattern.match(path) and method.lower() in operations:
            return template, operations[method.lower()]
    raise AssertionError(f"{method} {path} is not an operation of Forgejo's API")


def request_problems(
    operation: dict[str, Any], query: dict[str, str], body: Any | None
) -> list[str]:
    params = operation.get("parameters", [])
    allowed_query = {p["name"] for p in params if p.get("in") == "query"}
    problems = [f"query {name!r} not declared" for name in query if name not in allowed_query]
    body_params = [p for p in params if p.get("in") == "body"]
    if body is not None:
        if not body_params:
            problems.append("a body where none is declared")
        else:
            problems += conforms(body_params[0]["schema"], body, "body")
    return problems


def response_problems(operation: dict[str, Any], status: int, payload: Any) -> list[str]:
    declared = operation["responses"].get(str(status))
    if declared is None:
        return [f"status {status} not declared"]
    if "$ref" in declared:
        declared = SWAGGER["responses"][declared["$ref"].rsplit("/", 1)[1]]
    schema = declared.get("schema")
    return conforms(schema, payload, "response") if schema else []


def conforms(schema: dict[str, Any], value: Any, where: str) -> list[str]:
    """Problems of `value` against a swagger schema: unknown properties, wrong types."""
    if "$ref" in schema:
        schema = SWAGGER["definitions"][schema["$ref"].rsplit("/", 1)[1]]
    if value is None:
        return []  # Go's omitempty/null pointers: every field may be null in Forgejo
    kind = schema.get("type")
    if kind in _TYPES and not (
        isinstance(value, _TYPES[kind]) and not (kind != "boolean" and isinstance(value, bool))
    ):
        return [f"{where}: expected {kind}, got {type(value).__name__}"]
    problems: list[str] = []
    if kind == "array":
        for n, item in enumerate(value):
            problems += conforms(schema.get("items", {}), item, f"{where}[{n}]")
    if isinstance(value, dict) and "properties" in schema:
        props = schema["properties"]
        for key, item in value.items():
            if key not in props:
                problems.append(f"{where}.{key}: not a property")
            else:
                problems += conforms(props[key], item, f"{where}.{key}")
    return problems
