"""Models known to the gateway, by name and alias, with their fallback chains."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from hanchang.core.models import ModelSpec
from hanchang.gateway.errors import ModelNotFound

log = logging.getLogger(__name__)


class ModelRegistry:
    """The configured models, and those the platform adds while it runs (fine-tuned models,
    read from `added` at most every `refresh_s` seconds, and at once when a name is missing)."""

    def __init__(self, specs: Iterable[ModelSpec], default_model: str | None = None,
                 added: Callable[[], list[ModelSpec]] | None = None, refresh_s: float = 5.0):
        self._configured = list(specs)
        self._added, self._refresh_s, self._loaded_at = added, refresh_s, float("-inf")
        self._build(self._configured)
        chat = [s.name for s in self._specs.values() if s.kind == "chat"]
        self.default_model = (default_model and self._labels[default_model]) or (chat[0] if chat else None)

    def _build(self, specs: list[ModelSpec]) -> None:
        by_name: dict[str, ModelSpec] = {}
        labels: dict[str, str] = {}
        for spec in specs:
            by_name[spec.name] = spec
            for label in (spec.name, *spec.aliases):
                labels[label] = spec.name
        self._specs, self._labels = by_name, labels  # swapped whole: a reader never sees half
        self._shared = [s for s in by_name.values() if "owner_agency_id" not in s.extra]

    def refresh(self, force: bool = False, min_age_s: float | None = None) -> None:
        if self._added is None:
            return
        age = time.monotonic() - self._loaded_at
        if not force and age < (self._refresh_s if min_age_s is None else min_age_s):
            return
        self._loaded_at = time.monotonic()
        try:
            added = self._added()
        except Exception:  # the database away for a moment: the configured models still answer
            log.warning("could not read the platform's added models", exc_info=True)
            return
        names = {s.name for s in self._configured}
        self._build(self._configured + [s for s in added if s.name not in names])

    def __iter__(self):
        self.refresh()
        return iter(list(self._specs.values()))

    @property
    def shared(self) -> list[ModelSpec]:
        """Every model but the agencies' own fine-tuned ones (what policy may reroute to)."""
        self.refresh()
        return self._shared

    @property
    def configured(self) -> list[ModelSpec]:
        """The models of the configuration (what health checks and readiness look at)."""
        return list(self._configured)

    def usable_by(self, agency_id: int) -> list[ModelSpec]:
        """What a caller of this agency may pick: the configured models and the agency's own
        fine-tuned models that are served."""
        return self.shared + [s for s in self if s.extra.get("owner_agency_id") == agency_id
                              and s.extra.get("status") == "served"]

    def requested(self, name_or_alias: str | None) -> str:
        """The label a caller asked for (a body's `model`, a form's choice), or the default model."""
        return str(name_or_alias or self.default_model or "")

    def _name_of(self, label: str) -> str | None:
        self.refresh()
        if label not in self._labels:
            self.refresh(min_age_s=1.0)  # a model promoted a moment ago
        return self._labels.get(label)

    def canonical(self, name_or_alias: str) -> str | None:
        """The configured model a label names, or None (e.g. a caller's typo)."""
        return self._name_of(name_or_alias)

    def get(self, name_or_alias: str) -> ModelSpec:
        name = self._name_of(name_or_alias)
        specs = self._specs
        if name is None or name not in specs:
            # An agency's fine-tuned models are not named to anyone: they are its own.
            known = ", ".join(sorted(n for n, s in specs.items() if "owner_agency_id" not in s.extra)) \
                or "(none configured)"
            raise ModelNotFound(
                f"The model '{name_or_alias}' does not exist. Available models: {known}.",
                param="model",
            )
        return specs[name]

    def candidates(self, requested: ModelSpec) -> list[ModelSpec]:
        """The requested model, then its fallbacks of the same or higher clearance, in order."""
        chain = [requested]
        for label in requested.fallbacks:
            spec = self.get(label)
            if spec not in chain and spec.kind == requested.kind and spec.max_grade >= requested.max_grade:
                chain.append(spec)
        return chain
