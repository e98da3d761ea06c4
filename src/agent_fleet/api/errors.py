"""One table from errors to HTTP statuses, and the `{"error", "code"}` reply shape."""

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from agent_fleet.domain import errors as e

log = structlog.get_logger("agent_fleet.api")

#: Most specific first: the first matching class decides.
STATUS_TABLE: list[tuple[type[e.FleetError], int, str]] = [
    (e.TaskNotFound, 404, "task_not_found"),
    (e.AgentNotFound, 404, "agent_not_found"),
    (e.NotFound, 404, "not_found"),
    (e.StaleLease, 409, "stale_lease"),
    (e.InvalidTransition, 409, "invalid_transition"),
    (e.AgentUnavailable, 409, "agent_unavailable"),
    (e.AgentIdTaken, 409, "agent_id_taken"),
    (e.ConcurrencyConflict, 409, "conflict"),
    (e.Conflict, 409, "conflict"),
    (e.NotTaskHolder, 403, "not_task_holder"),
    (e.Forbidden, 403, "forbidden"),
    (e.Unauthorized, 401, "unauthorized"),
    (e.InvalidInput, 422, "invalid_input"),
    (e.StoreError, 503, "store_unavailable"),
    (e.ForgeError, 502, "forge_unavailable"),
]

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


def error_body(message: str, code: str) -> dict[str, str]:
    return {"error": message, "code": code}


def status_of(error: e.FleetError) -> tuple[int, str]:
    for cls, status, code in STATUS_TABLE:
        if isinstance(error, cls):
            return status, code
    return 500, "internal_error"


async def _fleet_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, e.FleetError)
    status, code = status_of(exc)
    if status >= 500:
        # The reply stays generic; the operator's log says what broke (disk full, ...).
        log.warning("request failed", code=code, error=str(exc))
    message = "the store is unavailable" if isinstance(exc, e.StoreError) else str(exc)
    return JSONResponse(error_body(message, code), status_code=status)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    if first.get("type") == "json_invalid":
        return JSONResponse(error_body("request body is not valid JSON", "malformed_json"), 400)
    message = f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
    return JSONResponse(error_body(message, "validation_error"), status_code=422)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return JSONResponse(
        error_body(str(exc.detail), code), status_code=exc.status_code, headers=exc.headers
    )


async def _too_deep(_: Request, __: Exception) -> JSONResponse:
    return JSONResponse(error_body("request body is nested too deeply", "malformed_json"), 400)


def install(app: FastAPI) -> None:
    app.add_exception_handler(e.FleetError, _fleet_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RecursionError, _too_deep)
