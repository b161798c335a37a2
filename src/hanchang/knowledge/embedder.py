"""Dense vectors for hybrid retrieval, from the configured embedding model — through the gateway.

Used from synchronous code (ingestion, search in worker threads). The embedder never talks to a
model itself: it hands each batch to `call`, which the composition wires to the gateway, so an
embedding at ingest or query time gets the same grade policy, personal-data guard, limits, usage
row and audit record as any other model call. An embedder acts for someone (`acting_for`): the
uploader, the person searching, or the operator at the command line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from hanchang.core.grades import Grade
from hanchang.core.models import ModelSpec
from hanchang.core.policy import decide_model_access
from hanchang.core.principal import Principal

BATCH = 64

# (body, grade, principal, endpoint) -> an OpenAI `embeddings` result; raises EmbeddingRefused.
ModelCall = Callable[[dict[str, Any], Grade, Principal | None, str], dict[str, Any]]


class EmbeddingRefused(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Embedder:
    def __init__(self, spec: ModelSpec, call: ModelCall, principal: Principal | None = None,
                 endpoint: str = "embeddings.ingest"):
        self.spec = spec
        self._call = call
        self.principal = principal
        self.endpoint = endpoint

    def acting_for(self, principal: Principal | None, endpoint: str) -> Embedder:
        """The same embedder, recording its calls as `principal`'s (`embeddings.ingest` / `.query`)."""
        return Embedder(self.spec, self._call, principal, endpoint)

    def embed(self, texts: list[str], grade: Grade) -> np.ndarray:
        decision = decide_model_access(grade, self.spec)
        if not decision.allowed:  # said before any call; the gateway would refuse it too
            raise EmbeddingRefused(decision.reason)
        vectors: list[list[float]] = []
        for start in range(0, len(texts), BATCH):
            body = {"model": self.spec.name, "input": texts[start:start + BATCH], "encoding_format": "float"}
            result = self._call(body, grade, self.principal, self.endpoint)
            vectors.extend(item["embedding"] for item in sorted(result["data"], key=lambda item: item["index"]))
        return np.asarray(vectors, dtype=np.float32)


def acting(embedder: Embedder | None, principal: Principal | None, endpoint: str) -> Embedder | None:
    """`embedder` acting for `principal` (None when no embedding model is configured)."""
    return embedder.acting_for(principal, endpoint) if embedder is not None else None


def embedding_spec(settings) -> ModelSpec | None:
    """The configured embedding model (`knowledge.embedding_model`), if any."""
    name = settings.knowledge.embedding_model
    if not name:
        return None
    return next(s for s in settings.model_specs() if name in (s.name, *s.aliases))
