"""The one egress function: deadlines, caps, redirects, schemes and the private-address guard."""

from __future__ import annotations

import asyncio
import time

import pytest

from pipeline import fetch

from .faultserver import (drip, endless_body, fault_server, gzip_bomb, reset_mid_body, respond,
                          stall_before_headers)

FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'


def policy(timeout_s: float = 2.0, max_bytes: int = 100_000, allow=("127.0.0.1",)) -> fetch.FetchPolicy:
    return fetch.FetchPolicy(timeout_s=timeout_s, max_bytes=max_bytes, user_agent="chipwatch-test",
                             allow_private_hosts=frozenset(allow))


def get(url: str, pol: fetch.FetchPolicy, guard_first: bool = False) -> fetch.FetchResult:
    async def go():
        async with fetch.client(pol) as http:
            return await fetch.fetch(http, url, pol, guard_first=guard_first)
    return asyncio.run(go())


@pytest.fixture
def server():
    with fault_server() as s:
        yield s


def test_ok_body(server):
    server.routes["/f"] = respond("200 OK", FEED, {"Content-Type": "application/rss+xml"})
    result = get(server.url("/f"), policy())
    assert result.ok and result.body == FEED and result.content_type == "application/rss+xml"


def test_a_dripping_server_cannot_hold_a_worker_past_the_deadline(server):
    server.routes["/drip"] = drip(FEED, every_s=0.5)
    started = time.monotonic()
    result = get(server.url("/drip"), policy(timeout_s=1.5))
    assert time.monotonic() - started < 2.5
    assert result.error == "timed out after 1.5 s"


def test_headers_that_never_come_time_out(server):
    server.routes["/stall"] = stall_before_headers(5)
    result = get(server.url("/stall"), policy(timeout_s=1))
    assert result.error == "timed out after 1 s"


def test_connection_reset_mid_body(server):
    server.routes["/reset"] = reset_mid_body(FEED)
    result = get(server.url("/reset"), policy())
    assert not result.ok
    assert result.error.split(":")[0] in ("connection broken by server", "connection reset while reading")


def test_body_cap_aborts_an_endless_body(server):
    server.routes["/big"] = endless_body()
    result = get(server.url("/big"), policy(max_bytes=1_000_000))
    assert result.error == "too large: body exceeds cap of 1,000,000 bytes"


def test_declared_length_over_the_cap_is_refused_before_reading(server):
    server.routes["/declared"] = endless_body(declared=1_000_000_000)
    result = get(server.url("/declared"), policy(max_bytes=1_000_000))
    assert result.error == "too large: Content-Length 1,000,000,000 bytes > cap 1,000,000"


def test_gzip_that_expands_past_the_cap_is_refused(server):
    server.routes["/bomb"] = gzip_bomb(50_000_000)
    result = get(server.url("/bomb"), policy(max_bytes=1_000_000))
    assert result.error == "too large: body exceeds cap of 1,000,000 bytes"


def test_redirects_are_followed_up_to_five(server):
    for i in range(5):
        server.routes[f"/r{i}"] = respond("302 Found", b"", {"Location": f"/r{i + 1}"})
    server.routes["/r5"] = respond("200 OK", FEED)
    assert get(server.url("/r0"), policy()).ok
    server.routes["/r5"] = respond("301 Moved Permanently", b"", {"Location": "/r6"})
    server.routes["/r6"] = respond("200 OK", FEED)
    assert get(server.url("/r0"), policy()).error == "too many redirects (more than 5)"


def test_redirect_loop_is_named(server):
    server.routes["/a"] = respond("302 Found", b"", {"Location": "/b"})
    server.routes["/b"] = respond("302 Found", b"", {"Location": "/a"})
    assert get(server.url("/a"), policy()).error.startswith("redirect loop at")


@pytest.mark.parametrize("target", ["file:///etc/hostname", "ftp://example.org/x", "data:text/plain,hi"])
def test_redirects_to_other_schemes_are_refused(server, target):
    server.routes["/x"] = respond("302 Found", b"", {"Location": target})
    assert get(server.url("/x"), policy()).error.startswith("refused: ")


@pytest.mark.parametrize("url", ["file:///etc/hostname", "ftp://example.org/feed"])
def test_only_http_and_https_are_fetched(url):
    assert get(url, policy()).error.startswith("refused: scheme")


def test_private_addresses_are_refused_unless_allowed():
    with fault_server("127.0.0.2") as other:
        other.routes["/page"] = respond("200 OK", b"<html>secret</html>")
        refused = get(other.url("/page"), policy(), guard_first=True)
        assert refused.error == "refused: 127.0.0.2 resolves to non-public address 127.0.0.2"
        allowed = get(other.url("/page"), policy(allow=("127.0.0.2",)), guard_first=True)
        assert allowed.ok


def test_a_configured_feed_redirecting_to_a_private_address_is_refused(server):
    with fault_server("127.0.0.2") as other:
        other.routes["/internal"] = respond("200 OK", FEED)
        server.routes["/feed"] = respond("302 Found", b"", {"Location": other.url("/internal")})
        result = get(server.url("/feed"), policy(), guard_first=False)
        assert result.error == "refused: 127.0.0.2 resolves to non-public address 127.0.0.2"


@pytest.mark.parametrize("address, public", [
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("0.0.0.0", False), ("224.0.0.1", False), ("::1", False),
    ("::ffff:127.0.0.1", False), ("::ffff:10.0.0.1", False), ("fe80::1", False), ("fc00::1", False),
    ("100.64.0.1", False), ("8.8.8.8", True), ("2606:4700:4700::1111", True), ("::ffff:8.8.8.8", True),
])
def test_public_address_classification(address, public):
    assert fetch.is_public_address(address) is public


@pytest.mark.parametrize("status", ["404 Not Found", "500 Internal Server Error", "503 Service Unavailable"])
def test_http_errors_are_one_line(server, status):
    server.routes["/e"] = respond(status, b"<html>error page</html>", {"Retry-After": "120"})
    result = get(server.url("/e"), policy())
    assert result.error == f"HTTP {status} (Retry-After: 120)"
    assert result.retry_after_s() == 120.0


def test_retry_after_and_max_age_parsing():
    assert fetch.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412400.0) == 80.0
    assert fetch.parse_retry_after("soon") is None
    assert fetch.parse_max_age('public, max-age="600"') == 600.0
    assert fetch.parse_max_age("no-cache") is None
