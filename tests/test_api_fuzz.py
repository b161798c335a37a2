"""A bounded property-based fuzz of the API: for every operation in /openapi.json, request bodies
drawn from the operation's own JSON schema (mostly well-typed, so they reach past validation)
or hostile JSON, path
values from huge integers to control characters, query strings likewise, sent with a valid
platform-admin key to a real server. No answer may be a 5xx.

Left out: multipart uploads (their own tests send broken files) and connector routes, which
fetch the OpenAPI document at a URL the body names — a fuzzer must not make the server connect
to arbitrary addresses.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hanchang.core.principal import Role

EXAMPLES_PER_OPERATION = 20
SKIPPED = ("/api/connectors", "/api/actions/", "/auth/")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=40)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12)
path_values = st.integers(-(2**70), 2**70).map(str) | st.text(min_size=1, max_size=20)


@pytest.fixture
def admin(platform):
    return platform, platform.headers(platform.new_user_key("root", Role.PLATFORM_ADMIN))


def _operations(spec: dict) -> list[tuple[str, str, dict | None, list[str]]]:
    found = []
    for path, operations in spec["paths"].items():
        if path.startswith(SKIPPED) or any(path.startswith(s) for s in SKIPPED):
            continue
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if content and "application/json" not in content:
                continue  # multipart
            schema = content.get("application/json", {}).get("schema")
            query = [p["name"] for p in operation.get("parameters", ()) if p.get("in") == "query"]
            found.append((method.upper(), path, schema, query))
    return found


def _from_schema(schema: dict, components: dict, depth: int = 0):
    """Values of an OpenAPI schema: each property present or not, typed as declared, and now and
    then any JSON at all in its place."""
    if "$ref" in schema:
        return _from_schema(components["schemas"][schema["$ref"].rsplit("/", 1)[-1]], components, depth)
    if depth > 4:
        return json_values
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        return st.one_of([_from_schema(o, components, depth + 1) for o in options])
    if "enum" in schema:
        return st.sampled_from(schema["enum"]) | json_values
    kind = schema.get("type")
    typed = {
        "string": st.text(max_size=60) | st.sampled_from(["O", "S", "C", "기밀", "2026-01-01", "\x00", "a" * 300]),
        "integer": st.integers(-(2**70), 2**70),
        "number": st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**70), 2**70),
        "boolean": st.booleans(),
        "null": st.none(),
    }.get(kind)
    if typed is not None:
        return typed | json_values
    if kind == "array":
        return st.lists(_from_schema(schema.get("items", {}), components, depth + 1), max_size=4) | json_values
    properties = schema.get("properties") or {}
    if kind == "object" or properties:
        fields = {name: _from_schema(sub, components, depth + 1) for name, sub in properties.items()}
        return st.fixed_dictionaries({}, optional=fields) | json_values
    return json_values


def _body_strategy(schema: dict | None, components: dict):
    return st.none() if schema is None else _from_schema(schema, components)


def test_no_request_makes_a_5xx(admin):
    platform, headers = admin
    spec = httpx.get(platform.url + "/openapi.json", timeout=10).json()
    components = spec.get("components", {})
    operations = _operations(spec)
    assert len(operations) > 20
    failures: list[str] = []

    for method, path, schema, query in operations:
        _fuzz(platform.url, headers, method, path, schema, query, components, failures)
    assert not failures, "\n".join(failures[:10])


def _fuzz(base: str, headers: dict, method: str, path: str, schema: dict | None, query: list[str],
          components: dict, failures: list[str]) -> None:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]

    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(body=_body_strategy(schema, components),
           params=st.fixed_dictionaries({n: path_values for n in names}),
           query_values=st.fixed_dictionaries({q: path_values for q in query}))
    def probe(body, params, query_values):
        url = path
        for name, value in params.items():
            url = url.replace("{" + name + "}", quote(value, safe=""))
        response = httpx.request(method, base + url, headers=headers, timeout=60,
                                 params=query_values or None, json=body)
        if response.status_code >= 500:
            failures.append(f"{method} {url} {str(body)[:200]} -> {response.status_code} {response.text[:200]}")

    probe()
