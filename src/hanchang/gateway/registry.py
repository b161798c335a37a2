"""Models known to the gateway, by name and alias, with their fallback chains."""

from __future__ import annotations

from collections.abc import Iterable

from hanchang.core.models import ModelSpec
from hanchang.gateway.errors import ModelNotFound


class ModelRegistry:
    def __init__(self, specs: Iterable[ModelSpec], default_model: str | None = None):
        self._specs: dict[str, ModelSpec] = {}
        self._labels: dict[str, str] = {}
        for spec in specs:
            self._specs[spec.name] = spec
            for label in (spec.name, *spec.aliases):
                self._labels[label] = spec.name
        chat = [s.name for s in self._specs.values() if s.kind == "chat"]
        self.default_model = (default_model and self._labels[default_model]) or (chat[0] if chat else None)

    def __iter__(self):
        return iter(self._specs.values())

    def requested(self, name_or_alias: str | None) -> str:
        """The label a caller asked for (a body's `model`, a form's choice), or the default model."""
        return str(name_or_alias or self.default_model or "")

    def canonical(self, name_or_alias: str) -> str | None:
        """The configured model a label names, or None (e.g. a caller's typo)."""
        return self._labels.get(name_or_alias)

    def get(self, name_or_alias: str) -> ModelSpec:
        name = self._labels.get(name_or_alias)
        if name is None:
            known = ", ".join(sorted(self._specs)) or "(none configured)"
            raise ModelNotFound(
                f"The model '{name_or_alias}' does not exist. Available models: {known}.",
                param="model",
            )
        return self._specs[name]

    def candidates(self, requested: ModelSpec) -> list[ModelSpec]:
        """The requested model, then its fallbacks of the same or higher clearance, in order."""
        chain = [requested]
        for label in requested.fallbacks:
            spec = self.get(label)
            if spec not in chain and spec.kind == requested.kind and spec.max_grade >= requested.max_grade:
                chain.append(spec)
        return chain
