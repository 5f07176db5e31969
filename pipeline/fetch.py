"""The one egress function: every request chipwatch makes (feeds and article pages) goes here.

It enforces a total deadline per request (a server that drips a byte a second cannot hold a
worker longer than `timeout_s`), a streamed body cap (decoded bytes, so gzip bombs stop too),
at most five redirects with every hop checked, http/https only, and the guard against private
addresses. Failures come back as a `FetchResult` with a one-line `error`, never as an exception.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import httpx

MAX_REDIRECTS = 5
REDIRECT_CODES = {301, 302, 303, 307, 308}


@dataclass(frozen=True)
class FetchPolicy:
    timeout_s: float
    max_bytes: int
    user_agent: str
    allow_private_hosts: frozenset[str] = frozenset()


@dataclass
class FetchResult:
    url: str
    status: int | None = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300

    @property
    def not_modified(self) -> bool:
        return self.error is None and self.status == 304

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def retry_after_s(self, now: float | None = None) -> float | None:
        return parse_retry_after(self.headers.get("retry-after"), now)

    def max_age_s(self) -> float | None:
        return parse_max_age(self.headers.get("cache-control"))


class Refused(Exception):
    """A request that policy forbids (scheme, private address, too large)."""


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast
                or ip.is_reserved or ip.is_unspecified or not ip.is_global)


def _host_allowed(host: str, policy: FetchPolicy) -> bool:
    return host.lower().strip("[]") in policy.allow_private_hosts


async def _check_host(host: str, port: int, policy: FetchPolicy) -> None:
    """Refuse a host whose addresses include a non-public one (before we connect)."""
    if _host_allowed(host, policy):
        return
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise httpx.ConnectError(f"cannot resolve {host}: {exc.strerror}") from exc
    for info in infos:
        address = info[4][0]
        if not is_public_address(address):
            raise Refused(f"refused: {host} resolves to non-public address {address}")


def _check_peer(response: httpx.Response, host: str, policy: FetchPolicy) -> None:
    """Check the address we actually connected to (defeats DNS rebinding)."""
    if _host_allowed(host, policy):
        return
    stream = response.extensions.get("network_stream")
    peer = stream.get_extra_info("server_addr") if stream is not None else None
    if peer and not is_public_address(peer[0]):
        raise Refused(f"refused: {host} connected to non-public address {peer[0]}")


def _check_scheme(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise Refused(f"refused: scheme {parts.scheme or '(none)'!r} is not http or https")
    if not parts.hostname:
        raise Refused(f"refused: no host in {url!r}")
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def client(policy: FetchPolicy, max_connections: int = 32) -> httpx.AsyncClient:
    timeout = httpx.Timeout(policy.timeout_s, connect=min(10.0, policy.timeout_s))
    return httpx.AsyncClient(
        timeout=timeout,
        follow_redirects=False,
        headers={"User-Agent": policy.user_agent, "Accept-Encoding": "gzip, deflate",
                 "Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, "
                           "text/xml;q=0.9, application/feed+json;q=0.8, */*;q=0.5"},
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=16),
        trust_env=False,
    )


async def fetch(http: httpx.AsyncClient, url: str, policy: FetchPolicy, *, guard_first: bool,
                headers: dict[str, str] | None = None) -> FetchResult:
    """GET `url` under the policy. `guard_first=False` trusts the first hop (a configured feed)."""
    started = time.monotonic()
    result = FetchResult(url=url)
    try:
        async with asyncio.timeout(policy.timeout_s):
            await _follow(http, url, policy, guard_first, headers or {}, result)
    except TimeoutError:
        result.error = f"timed out after {policy.timeout_s:g} s"
    except Refused as exc:
        result.error = str(exc)
    except httpx.TooManyRedirects as exc:
        result.error = str(exc)
    except httpx.InvalidURL as exc:
        result.error = f"refused: invalid URL ({exc})"
    except httpx.HTTPError as exc:
        result.error = _describe(exc)
    except OSError as exc:
        result.error = f"network error: {exc.strerror or exc}"
    result.seconds = time.monotonic() - started
    if result.error:
        result.body = b""
    return result


async def _follow(http: httpx.AsyncClient, url: str, policy: FetchPolicy, guard: bool,
                  headers: dict[str, str], result: FetchResult) -> None:
    seen = []
    for _hop in range(MAX_REDIRECTS + 1):
        host, port = _check_scheme(url)
        if guard:
            await _check_host(host, port, policy)
        seen.append(url)
        result.url = url
        async with http.stream("GET", url, headers=headers) as response:
            if guard:
                _check_peer(response, host, policy)
            result.status = response.status_code
            result.headers = {k.lower(): v for k, v in response.headers.items()}
            location = response.headers.get("location")
            if response.status_code in REDIRECT_CODES and location:
                url = urljoin(url, location.strip())
                if url in seen:
                    raise httpx.TooManyRedirects(f"redirect loop at {url}")
                guard = True
                continue
            if 200 <= response.status_code < 300:
                result.body = await _read_capped(response, policy.max_bytes)
            elif response.status_code != 304:
                result.error = _status_error(response)
            return
    raise httpx.TooManyRedirects(f"too many redirects (more than {MAX_REDIRECTS})")


async def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise Refused(f"too large: Content-Length {int(declared):,} bytes > cap {max_bytes:,}")
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise Refused(f"too large: body exceeds cap of {max_bytes:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _status_error(response: httpx.Response) -> str:
    reason = response.reason_phrase or ""
    message = f"HTTP {response.status_code} {reason}".strip()
    retry_after = response.headers.get("retry-after")
    if retry_after:
        message += f" (Retry-After: {retry_after.strip()[:40]})"
    return message


def _describe(exc: httpx.HTTPError) -> str:
    kinds = {
        httpx.ConnectTimeout: "connect timed out",
        httpx.ReadTimeout: "read timed out",
        httpx.WriteTimeout: "write timed out",
        httpx.PoolTimeout: "no free connection (pool timeout)",
        httpx.ConnectError: "connection failed",
        httpx.RemoteProtocolError: "connection broken by server",
        httpx.ReadError: "connection reset while reading",
        httpx.DecodingError: "cannot decode body (bad Content-Encoding)",
        httpx.UnsupportedProtocol: "refused: unsupported protocol",
    }
    label = next((text for cls, text in kinds.items() if isinstance(exc, cls)), "HTTP error")
    detail = " ".join(str(exc).split())
    return f"{label}: {detail}"[:300] if detail else label


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from now that Retry-After asks for (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def parse_max_age(cache_control: str | None) -> float | None:
    if not cache_control:
        return None
    for directive in cache_control.lower().split(","):
        name, _, value = directive.strip().partition("=")
        if name == "max-age" and value.strip('"').isdigit():
            return float(value.strip('"'))
    return None
