"""Is an upstream model reachable? For operators' tools, without a running server."""

from __future__ import annotations

from typing import Any

from hanchang.core.models import ModelSpec
from hanchang.gateway.backends import create_backend


async def probe_upstream(spec: ModelSpec) -> dict[str, Any]:
    """The backend's own reachability check (state, detail), or 'unknown' if it has none."""
    backend = create_backend(spec)
    try:
        probe = getattr(backend, "probe", None)
        return {"name": spec.name, "backend": spec.base_url, **(await probe() if probe else {"state": "unknown"})}
    finally:
        await backend.aclose()
