"""Is an upstream model reachable? For operators' tools, without a running server."""

from __future__ import annotations

from typing import Any

from hanchang.core.models import ModelSpec
from hanchang.gateway.backends import create_backend

# States in which a model can answer now. An embedded model that has not started yet ("idle")
# starts on the first question: not a failure.
USABLE_STATES = frozenset({"ready", "idle", "reachable"})


async def probe_upstream(spec: ModelSpec) -> dict[str, Any]:
    """The backend's own reachability check (state, detail), or 'unknown' if it has none."""
    backend = create_backend(spec)
    try:
        probe = getattr(backend, "probe", None)
        return {"name": spec.name, "backend": spec.base_url, **(await probe() if probe else {"state": "unknown"})}
    finally:
        await backend.aclose()
