"""Backends: the only code that talks to a model. One registry, declared here.

Only `gateway` imports this package: everything else reaches a model through `Gateway`.
A plugin adds a backend kind under the entry-point group `hanchang.backends` (see `hanchang.plugins`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from hanchang import plugins
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


BUILTIN_FACTORIES: dict[str, BackendFactory] = {"openai": _openai, "llamacpp": _llamacpp}


def factories() -> dict[str, BackendFactory]:
    """Built-in backend kinds and those plugins add (`hanchang.backends`)."""
    return plugins.merged(plugins.BACKENDS, BUILTIN_FACTORIES, list(plugins.load(plugins.BACKENDS)))


def create_backend(spec: ModelSpec) -> Backend:
    return factories()[spec.backend](spec)
