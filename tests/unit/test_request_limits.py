"""The pure parts of the HTTP guards: Host names, the connection cap, metric labels."""

import pytest

from agent_fleet.api.connections import accept_backlog, connection_cap
from agent_fleet.api.hosts import AllowedHosts
from agent_fleet.api.metrics import HTTP_METHODS, bounded, status_class, webhook_result
from agent_fleet.config import ServerConfig
from agent_fleet.worker.job import RECEIPT_TEXT_BYTES, bounded_text


@pytest.mark.parametrize(
    ("host", "permitted"),
    [
        ("localhost", True),
        ("localhost:9090", True),
        ("LOCALHOST.", True),
        ("127.0.0.1:9090", True),
        ("10.1.2.3", True),
        ("[::1]:9090", True),
        ("[fe80::1]", True),
        ("::1", True),
        ("fleet.example.com", True),
        ("Fleet.Example.Com:443", True),
        ("ci.build.example.org", True),
        ("build.example.org", False),
        ("attacker.example", False),
        ("localhost.attacker.example", False),
        ("127.0.0.1.nip.io", False),
        ("fleet.example.com.attacker.example", False),
        ("", False),
    ],
)
def test_host_names(host: str, permitted: bool) -> None:
    allowed = AllowedHosts.of("fleet.example.com", "*.build.example.org", None, "")
    assert allowed.permits(host) is permitted


def test_a_star_allows_any_host() -> None:
    assert AllowedHosts.of("*").permits("anything.example")


@pytest.mark.parametrize(
    ("wanted", "file_limit", "cap"),
    [(1000, 1024, 896), (1000, 65536, 1000), (1000, 256, 128), (50, 1024, 50), (10, 100, 1)],
)
def test_the_connection_cap_stays_under_the_file_limit(
    wanted: int, file_limit: int, cap: int
) -> None:
    assert connection_cap(wanted, file_limit) == cap
    # Refused connections are accepted in bursts of `backlog` before they are closed.
    if file_limit > 128:
        assert cap + accept_backlog(file_limit) < file_limit


def test_metric_labels_come_from_fixed_sets() -> None:
    assert bounded("GET", HTTP_METHODS) == "GET"
    assert bounded("FLOOD1", HTTP_METHODS) == "other"
    assert [status_class(s) for s in (101, 204, 302, 421, 503, 999)] == [
        "1xx",
        "2xx",
        "3xx",
        "4xx",
        "5xx",
        "other",
    ]
    assert webhook_result("ignored: no such task") == "ignored"
    assert webhook_result("anything the sender controls") == "other"


@pytest.mark.parametrize("text", ["short", "x" * 16_384, "x" * 100_000, "é" * 50_000, "€" * 9000])
def test_the_runners_receipt_text_always_fits_the_smallest_cap(text: str) -> None:
    cut = bounded_text(text)
    smallest_cap = ServerConfig.model_json_schema()["properties"]["max_event_text_bytes"]["minimum"]
    assert len(cut.encode("utf-8")) <= RECEIPT_TEXT_BYTES == smallest_cap
    assert cut == text or cut.endswith("bytes, cut to fit)")
    assert text.startswith(cut.split("\n… (")[0])
