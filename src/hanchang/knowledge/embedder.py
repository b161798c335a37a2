"""Dense vectors for hybrid retrieval, from any configured embedding model.

Used from synchronous code (CLI ingestion, API worker threads): each embedder owns its
backend and event loop. The grade policy applies as on every model call: a document (or
query) is only embedded by a model whose clearance covers its grade, and personal data is
masked for external models.
"""

from __future__ import annotations

import asyncio
import threading

import numpy as np

from hanchang.core.grades import Grade
from hanchang.core.models import ModelSpec
from hanchang.core.policy import decide_model_access
from hanchang.gateway.backends import create_backend
from hanchang.guard.request_guard import PersonalDataBlocked, PiiMode, guard_request

BATCH = 64


class EmbeddingRefused(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Embedder:
    def __init__(self, spec: ModelSpec, pii_mode: PiiMode):
        self.spec = spec
        # Placeholders cannot be restored in a vector, so pseudonymization masks here.
        self.pii_mode = PiiMode.MASK if pii_mode is PiiMode.PSEUDONYMIZE else pii_mode
        self._loop = asyncio.new_event_loop()
        self._backend = None
        self._lock = threading.Lock()

    def embed(self, texts: list[str], grade: Grade) -> np.ndarray:
        decision = decide_model_access(grade, self.spec)
        if not decision.allowed:
            raise EmbeddingRefused(decision.reason)
        vectors: list[list[float]] = []
        with self._lock:
            if self._backend is None:
                self._backend = create_backend(self.spec)
            for start in range(0, len(texts), BATCH):
                batch = self._guard(texts[start:start + BATCH])
                body = {"model": self.spec.upstream_model or self.spec.name, "input": batch}
                result = self._loop.run_until_complete(self._backend.embeddings(body))
                data = sorted(result["data"], key=lambda item: item["index"])
                vectors.extend(item["embedding"] for item in data)
        return np.asarray(vectors, dtype=np.float32)

    def _guard(self, texts: list[str]) -> list[str]:
        try:
            guarded = guard_request({"messages": [{"role": "user", "content": t} for t in texts]},
                                    self.pii_mode, self.spec.name)
        except PersonalDataBlocked as exc:
            raise EmbeddingRefused(exc.message) from exc
        return [m["content"] for m in guarded.body["messages"] if m["role"] == "user"]

    def close(self) -> None:
        with self._lock:
            if self._backend is not None:
                self._loop.run_until_complete(self._backend.aclose())
            self._loop.close()


def make_embedder(settings) -> Embedder | None:
    """The configured embedding model (`knowledge.embedding_model`), if any."""
    name = settings.knowledge.embedding_model
    if not name:
        return None
    spec = next(s for s in settings.model_specs() if name in (s.name, *s.aliases))
    return Embedder(spec, settings.pii.mode_for(spec.zone))
