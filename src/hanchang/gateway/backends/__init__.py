"""Backends: the only code that talks to a model. One registry, declared here."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from hanchang.core.models import ModelSpec
from hanchang.gateway.backends.base import Backend

BackendFactory = Callable[[ModelSpec], Backend]


def _openai(spec: ModelSpec) -> Backend:
    from hanchang.gateway.backends.openai_http import OpenAICompatibleBackend

    return OpenAICompatibleBackend(spec)


def _llamacpp(spec: ModelSpec) -> Backend:
    # The GGUF runs in a supervised engine process, reached over the same OpenAI wire format.
    from hanchang.gateway.backends.embedded import EmbeddedBackend

    home = spec.extra.get("home") or os.environ.get("HANCHANG_HOME") or "~/.hanchang"
    return EmbeddedBackend(spec, Path(home).expanduser())


# Add a backend kind by registering a factory here (or at start-up from a plugin).
BACKEND_FACTORIES: dict[str, BackendFactory] = {"openai": _openai, "llamacpp": _llamacpp}


def create_backend(spec: ModelSpec) -> Backend:
    return BACKEND_FACTORIES[spec.backend](spec)
