"""The baseline: a trivial FastAPI JSON POST, served by one uvicorn worker.

It parses a small JSON body into a pydantic model and answers JSON — what any
FastAPI endpoint costs before it does any work. The pull-cycle figures are
reported against its request rate, measured in the same run.

Run: `python -m uvicorn bench.trivial_app:app --workers 1 --no-access-log`.
"""

from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class Body(BaseModel):
    agent_id: str
    lease: str | None = None
    status: str = "completed"
    summary: str = ""


class Reply(BaseModel):
    ok: bool
    agent_id: str


@app.post("/echo")
async def echo(body: Body) -> Reply:
    return Reply(ok=True, agent_id=body.agent_id)
