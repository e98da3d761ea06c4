"""Task logs over HTTP: appended by offset, readable while the task runs, fenced by lease."""

import httpx

from tests.e2e.helpers import create, dequeue, register


def test_logs_append_by_offset_and_read_while_running(
    admin: httpx.Client, puller: httpx.Client
) -> None:
    register(puller, "w", [])
    task_id = create(admin, "t", [])["task_id"]
    got = dequeue(puller, "w")
    assert got is not None
    lease = got[1]

    def send(offset: int, data: str, lease: str = lease) -> httpx.Response:
        return puller.post(
            f"/api/v1/tasks/{task_id}/logs",
            json={"agent_id": "w", "lease": lease, "offset": offset, "data": data},
        )

    assert send(0, "step 1 ✓\n").json() == {"ack_offset": 11}
    assert send(0, "step 1 ✓\n").json() == {"ack_offset": 11}  # a resend is not doubled
    assert send(40, "far ahead").json() == {"ack_offset": 11}  # a gap: rewind to 11
    assert send(11, "step 2\n").json() == {"ack_offset": 18}
    text = admin.get(f"/api/v1/tasks/{task_id}/logs")
    assert text.text == "step 1 ✓\nstep 2\n"
    assert text.headers["X-Next-Offset"] == "18" and text.headers["X-Attempt"] == "0"
    tail = admin.get(f"/api/v1/tasks/{task_id}/logs", params={"offset": 11})
    assert tail.text == "step 2\n"
    assert send(18, "x", lease="old").status_code == 409
    other = puller.post(
        f"/api/v1/tasks/{task_id}/logs", json={"agent_id": "intruder", "offset": 18, "data": "x"}
    )
    assert other.status_code == 403
    assert admin.get(f"/api/v1/tasks/{task_id}/logs").text == "step 1 ✓\nstep 2\n"
