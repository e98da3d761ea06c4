"""`POST /api/v1/webhooks/forgejo`: verify over the raw body, dedupe, then act."""

import json

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from agent_fleet.api import metrics
from agent_fleet.api.replies import ERRORS
from agent_fleet.domain.errors import Unauthorized
from agent_fleet.forgejo import webhooks as forgejo

router = APIRouter(prefix="/api/v1", tags=["webhooks"], responses=ERRORS)


@router.post("/webhooks/forgejo", responses={202: {"description": "ignored or duplicate"}})
async def forgejo_webhook(request: Request) -> JSONResponse:
    counter = request.app.state.metrics.webhooks
    try:
        reply = await _handle(request)
    except Unauthorized:
        counter.labels(result="refused").inc()
        raise
    except Exception:
        counter.labels(result="error").inc()
        raise
    status = str(json.loads(bytes(reply.body)).get("status", ""))
    counter.labels(result=metrics.webhook_result(status)).inc()
    return reply


async def _handle(request: Request) -> JSONResponse:
    secret: str | None = request.app.state.webhook_secret
    if not secret:
        raise Unauthorized("webhooks are not configured: set [forgejo] webhook_secret")
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    forgejo.verify_signature(body, headers, secret)  # before any parsing
    event = forgejo.header(headers, forgejo.EVENT_HEADERS) or ""
    delivery = forgejo.header(headers, forgejo.DELIVERY_HEADERS) or forgejo.content_key(event, body)
    payload = forgejo.parse(event, body)
    if payload is None:
        return JSONResponse({"status": "ignored", "reason": f"event {event!r}"}, 202)
    fleet = request.app.state.fleet
    store = fleet.ctx.store
    key = forgejo.content_key(event, body)
    if not await store.record_delivery(delivery[:200], key, event, fleet.ctx.clock.now()):
        return JSONResponse({"status": "duplicate", "delivery": delivery[:200]}, 202)
    try:
        outcome = await fleet.webhooks.handle(forgejo.to_event(payload), f"webhook:{delivery[:64]}")
    except BaseException:
        # Not handled: let a redelivery try again rather than dropping it as seen.
        await store.forget_delivery(delivery[:200])
        raise
    if outcome.is_ignored:
        reply = {"status": "ignored", "reason": outcome.reason, "task_id": outcome.task_id}
        return JSONResponse(reply, 202)
    return JSONResponse({"status": outcome.result, "task_id": outcome.task_id}, 200)
