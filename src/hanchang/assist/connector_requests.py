"""The HTTP request of a proposed call, built from an OpenAPI operation and its arguments the way
OpenAPI says (simple style for path and header parameters, form style for the query), and
checked before it is stored or sent: its URL must be the operation's own path under the
connector's base URL. A path value never adds `/`, `?`, `#` or a dot segment; a header value
never adds a line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx

# Headers a parameter may not set: the transport's own, and credentials the platform does not hold.
RESERVED_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer",
                    "keep-alive", "proxy-authorization", "proxy-connection", "cookie", "authorization",
                    "expect", "content-type", "accept-encoding"}
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_HEADER_VALUE = re.compile(r"^[\t\x20-\x7e]*$")


class UnsafeCall(Exception):
    """The call would leave the operation's own address (or could not be written safely)."""

    def __init__(self, message_ko: str, message_en: str):
        super().__init__(f"{message_ko} ({message_en})")
        self.message_ko, self.message_en = message_ko, message_en


@dataclass(frozen=True)
class BuiltRequest:
    url: str
    headers: dict[str, str]
    body: dict[str, Any]


def _scalar(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise UnsafeCall(f"인자 '{name}'의 값은 문자열이나 숫자여야 합니다.", f"argument {name!r} must be a scalar")


def _path_value(name: str, value: Any) -> str:
    text = _scalar(name, value)
    if text in ("", ".", ".."):
        raise UnsafeCall(f"인자 '{name}'의 값('{text}')은 주소의 한 부분이 될 수 없습니다.",
                         f"path parameter {name!r} may not be empty or a dot segment")
    return quote(text, safe="")  # '/', '?', '#', '%' and every other reserved character encoded


def build(base_url: str, path: str, path_params: tuple[str, ...], query_params: tuple[str, ...],
          header_params: tuple[str, ...], body_fields: tuple[str, ...], arguments: dict[str, Any]) -> BuiltRequest:
    filled = path
    for name in path_params:
        filled = filled.replace("{" + name + "}", _path_value(name, arguments[name]))
    query = [(k, _scalar(k, arguments[k])) for k in query_params if k in arguments]
    headers = {}
    for name in header_params:
        if name not in arguments:
            continue
        value = _scalar(name, arguments[name])
        if not _HEADER_VALUE.match(value):
            raise UnsafeCall(f"인자 '{name}'의 값에 머리글(header)에 쓸 수 없는 글자(줄바꿈 등)가 있습니다.",
                             f"header parameter {name!r} holds characters a header may not carry")
        headers[name] = value
    body = {k: arguments[k] for k in body_fields if k in arguments}
    url = base_url + filled + (f"?{urlencode(query, quote_via=quote)}" if query else "")
    verify(base_url, path, path_params, url)
    return BuiltRequest(url, headers, body)


def _path_pattern(base_path: str, template: str, path_params: tuple[str, ...]) -> re.Pattern[str]:
    pattern, position = "", 0
    for match in re.finditer(r"\{([^}]+)\}", template):
        pattern += re.escape(template[position:match.start()])
        pattern += r"[^/?#]+" if match.group(1) in path_params else re.escape(match.group(0))
        position = match.end()
    pattern += re.escape(template[position:])
    return re.compile(re.escape(base_path) + pattern)


def verify(base_url: str, template: str, path_params: tuple[str, ...], url: str) -> None:
    """Refuse a URL that is not the operation's own path under the base URL, as written and as
    the HTTP client would send it (its dot-segment normalisation included)."""
    base, sent = urlsplit(base_url), urlsplit(url)
    wire = httpx.URL(url)
    base_path = base.path.rstrip("/")
    pattern = _path_pattern(base_path, template, path_params)
    wire_path = wire.raw_path.decode("ascii").split("?", 1)[0]
    segments = [s for s in sent.path.split("/")]
    if (sent.scheme, sent.netloc) != (base.scheme, base.netloc) or sent.fragment or "#" in url \
            or any(s.lower() in (".", "..", "%2e", "%2e%2e", ".%2e", "%2e.") for s in segments) \
            or not pattern.fullmatch(sent.path) or not pattern.fullmatch(wire_path) \
            or (wire.host, wire.port) != (httpx.URL(base_url).host, httpx.URL(base_url).port):
        raise UnsafeCall("제안된 호출 주소가 이 작업의 주소를 벗어납니다. 호출하지 않았습니다.",
                         f"the call's URL is not the operation's own path {template} under {base_url}")


def check_header_names(names: tuple[str, ...]) -> None:
    for name in names:
        if not _TOKEN.match(name) or name.lower() in RESERVED_HEADERS:
            raise UnsafeCall(f"API 설명의 머리글 인자 '{name}'은(는) 쓸 수 없습니다.",
                             f"header parameter {name!r} is not allowed")
