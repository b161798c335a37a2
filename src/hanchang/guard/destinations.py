"""Where a connector may send: the allow list (`connectors.allowed_hosts`) and the addresses
behind each name, checked when a connector is registered and again at every call.

An empty list means no connector may be registered or called. An entry is a host name or
address (`booking.mois.go.kr`, `10.20.1.5`, optionally `:port`), a wildcard for the names under
a domain (`*.mois.go.kr`), or a network (`10.20.0.0/16`). Loopback, private, link-local, shared
and other non-public addresses (and cloud metadata services) are refused unless the entry that
allows them names the host exactly or is a network holding the address: a wildcard never opens
the platform's own Redis, PostgreSQL or a metadata service. At call time the name is resolved
again and every address checked, and the connection goes to the address that was checked (the
certificate is still verified against the name), so a name that resolves elsewhere a second
time (DNS rebinding) is refused. Redirects are never followed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
METADATA = {ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200",
                                               "fd00:ec2::254")}


class DestinationRefused(Exception):
    def __init__(self, message_ko: str, message_en: str):
        super().__init__(f"{message_ko} ({message_en})")
        self.message_ko, self.message_en = message_ko, message_en


def system_resolve(host: str, port: int) -> list[str]:
    try:
        return sorted({info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})
    except OSError as exc:
        raise DestinationRefused(f"연계 API 주소({host})를 찾지 못했습니다. 주소를 확인해 주세요.",
                                 f"cannot resolve {host}: {exc}") from exc


def _address(text: str) -> IpAddress | None:
    try:
        found = ipaddress.ip_address(text.strip("[]").split("%")[0])
    except ValueError:
        return None
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped:
        return found.ipv4_mapped
    return found


def is_special(address: IpAddress) -> bool:
    """Not a public address: loopback, private, link-local, shared, multicast, reserved, metadata."""
    return address in METADATA or not address.is_global or address.is_multicast


@dataclass(frozen=True)
class _Entry:
    host: str | None = None  # an exact name or address (lower case)
    suffix: str | None = None  # "*.mois.go.kr" -> ".mois.go.kr"
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> _Entry:
        value = text.strip().lower()
        if "/" in value:
            return cls(network=ipaddress.ip_network(value, strict=False))
        port = None
        if value.count(":") == 1 or (value.startswith("[") and "]:" in value):  # host:port, [v6]:port
            value, _, port_text = value.rpartition(":")
            port = int(port_text)
        value = value.strip("[]")
        if value.startswith("*."):
            return cls(suffix=value[1:], port=port)
        return cls(host=value, port=port)


def parse_allowed_hosts(entries: list[str]) -> tuple[_Entry, ...]:
    """The allow list as entries; a malformed one is a ValueError naming it (a config error)."""
    parsed = []
    for entry in entries:
        try:
            parsed.append(_Entry.parse(entry))
        except ValueError as exc:
            raise ValueError(f"connectors.allowed_hosts: {entry!r} is not a host, host:port, *.domain "
                             f"or network ({exc})") from exc
    return tuple(parsed)


@dataclass(frozen=True)
class Destination:
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class DestinationPolicy:
    allowed_hosts: tuple[str, ...] = ()
    resolve: Callable[[str, int], list[str]] = system_resolve
    _entries: tuple[_Entry, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_entries", parse_allowed_hosts(list(self.allowed_hosts)))

    def check(self, url: str | httpx.URL) -> Destination:
        """Where `url` leads, if the allow list lets a connector go there; else DestinationRefused."""
        parsed = httpx.URL(str(url)) if not isinstance(url, httpx.URL) else url
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise DestinationRefused("연계 API 주소는 http:// 또는 https://로 시작하는 주소여야 합니다.",
                                     "a connector's address must be an http(s) URL with a host")
        if parsed.userinfo:
            raise DestinationRefused("연계 API 주소에 사용자 정보(user@)를 넣을 수 없습니다.",
                                     "no user information in a connector's address")
        if not self._entries:
            raise DestinationRefused(
                "이 플랫폼에는 연계 API를 둘 수 있는 주소가 정해져 있지 않습니다. 운영자가 설정 파일의 "
                "connectors.allowed_hosts에 허용할 주소를 넣어야 합니다.",
                "no connector destinations are allowed: set connectors.allowed_hosts in the config")
        host = parsed.host.lower().rstrip(".")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        matches = [e for e in self._entries if e.port in (None, port) and self._matches(e, host)]
        literal = _address(host)
        if not matches and literal is None and not any(e.network is not None for e in self._entries):
            raise self._not_listed(host, port)  # nothing could admit it: not even resolved
        addresses = [literal] if literal is not None else [_address(a) for a in self.resolve(host, port)]
        if not addresses or any(a is None for a in addresses):
            raise DestinationRefused(f"연계 API 주소({host})를 찾지 못했습니다.", f"{host} resolves to nothing usable")
        for address in addresses:
            self._check_address(host, port, address, matches)
        return Destination(parsed.scheme, host, port, tuple(str(a) for a in addresses))

    @staticmethod
    def _matches(entry: _Entry, host: str) -> bool:
        if entry.host is not None:
            return entry.host == host
        if entry.suffix is not None:
            return host.endswith(entry.suffix) and len(host) > len(entry.suffix)
        return False

    def _check_address(self, host: str, port: int, address: IpAddress, matches: list[_Entry]) -> None:
        named = any(e.host is not None for e in matches)
        in_network = any(e.network is not None and address in e.network and e.port in (None, port)
                         for e in self._entries)
        if not matches and not in_network:
            raise self._not_listed(host, port)
        if address in METADATA and not any(e.host == str(address) for e in self._entries):
            raise DestinationRefused(f"연계 API 주소({host})가 클라우드 메타데이터 주소({address})를 가리킵니다.",
                                     f"{host} resolves to the metadata address {address}; only that address "
                                     "listed itself in connectors.allowed_hosts may")
        if is_special(address) and not (named or in_network):
            raise DestinationRefused(
                f"연계 API 주소({host})가 내부 전용 주소({address})를 가리킵니다. 이런 주소는 "
                "connectors.allowed_hosts에 이름이나 네트워크로 직접 적힌 경우에만 쓸 수 있습니다.",
                f"{host} resolves to the non-public address {address}; only a host or network listed "
                "by name in connectors.allowed_hosts may")

    @staticmethod
    def _not_listed(host: str, port: int) -> DestinationRefused:
        return DestinationRefused(
            f"연계 API 주소({host}:{port})는 허용 목록(connectors.allowed_hosts)에 없습니다. 운영자에게 "
            "주소 추가를 요청하세요.", f"{host}:{port} is not in connectors.allowed_hosts")

    # -- sending -----------------------------------------------------------------------------
    def pin(self, request: httpx.Request) -> httpx.Request:
        """The request sent to the address just checked, with its name kept for Host and TLS."""
        destination = self.check(request.url)
        address = destination.addresses[0]
        request.url = request.url.copy_with(host=address)
        request.extensions = {**request.extensions, "sni_hostname": destination.host}
        return request


class GuardedTransport(httpx.BaseTransport):
    """An httpx transport that checks every request's destination and connects to the checked
    address; used for every call to a connector."""

    def __init__(self, policy: DestinationPolicy, **kwargs: Any):
        self.policy = policy
        self.inner = httpx.HTTPTransport(**kwargs)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.inner.handle_request(self.policy.pin(request))

    def close(self) -> None:
        self.inner.close()


class AsyncGuardedTransport(httpx.AsyncBaseTransport):
    def __init__(self, policy: DestinationPolicy, **kwargs: Any):
        self.policy = policy
        self.inner = httpx.AsyncHTTPTransport(**kwargs)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.inner.handle_async_request(self.policy.pin(request))

    async def aclose(self) -> None:
        await self.inner.aclose()
