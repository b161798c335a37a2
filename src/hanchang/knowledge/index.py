"""The embedded retrieval index of one collection: two BM25 fields (+ optional vectors), fused.

Built from analysed chunks (the DB keeps each chunk's Kiwi terms, so a rebuild never
re-analyses), saved under HANCHANG_HOME/indexes/, memory-mapped on load. Each chunk carries
the dates between which its document version is in force, so one index answers "today"
and any past `as_of` date. On PostgreSQL the shared index (`shared_index.py`) implements the
same protocol over postings in the database, with the same fields, weights and fusion.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Protocol

import bm25s
import numpy as np

from hanchang.core.versions import day_number, in_force
from hanchang.knowledge.analysis import char_bigrams, with_pairs

RRF_K = 60
CANDIDATES = 100  # per field, before fusion


@dataclass(frozen=True)
class IndexInput:
    chunk_id: int
    morphemes: list[str]  # Kiwi content morphemes of title + section + text
    gram_text: str  # title + section + text, for character bigrams
    valid_from: int  # date ordinal (0 = always)
    valid_to: int  # exclusive date ordinal (OPEN_END = still in force)
    vector: np.ndarray | None = None


@dataclass(frozen=True)
class KeyedIndex:
    """A keyed collection's index (S/C passages): terms become keyed hashes (HMAC with the agency's
    index key) before they are indexed or looked up, and the vectors file is sealed at rest."""

    hasher: Callable[[list[str]], list[str]]
    seal: Callable[[bytes], bytes]
    open: Callable[[bytes], bytes]

    @classmethod
    def of(cls, keyring, agency_id: int, collection_id: int, session=None) -> KeyedIndex:
        where = f"indexes.vectors:{collection_id}"
        return cls(keyring.term_hasher(agency_id, session),
                   lambda plain: keyring.seal_bytes(agency_id, where, plain),
                   lambda sealed: keyring.open_bytes(agency_id, where, sealed))

    def terms(self, terms: list[str]) -> list[str]:
        return self.hasher(terms)


def field_terms(keyed: KeyedIndex | None, morphemes: list[str], text: str) -> tuple[list[str], list[str]]:
    """The two lexical fields' terms of a text (hashed for a keyed index)."""
    morph, grams = with_pairs(morphemes), char_bigrams(text)
    return (keyed.terms(morph), keyed.terms(grams)) if keyed is not None else (morph, grams)


@dataclass(frozen=True)
class Hit:
    chunk_id: int
    score: float


class RetrievalIndex(Protocol):
    """What search needs of a collection's index: `CollectionIndex` (embedded, files under
    HANCHANG_HOME) or `SharedCollectionIndex` (postings in PostgreSQL)."""

    chunk_ids: np.ndarray
    valid_from: np.ndarray
    valid_to: np.ndarray
    vectors: np.ndarray | None

    def __len__(self) -> int: ...

    def search(self, morphemes: list[str], text: str, k: int, as_of: date | None = None,
               vector: np.ndarray | None = None) -> list[Hit]: ...

    def in_force_ids(self, day: int) -> set[int]:
        """The chunks whose document version is in force on `day` (a date ordinal)."""
        ...

    def valid_until(self, chunk_ids: set[int]) -> dict[int, int]:
        """Each of these chunks' `valid_to` (when its version stops being in force)."""
        ...


def _bm25(corpus: list[list[str]], k1: float, b: float) -> bm25s.BM25:
    vocab: dict[str, int] = {}
    ids = [[vocab.setdefault(term, len(vocab)) for term in doc] for doc in corpus]
    if not vocab:  # bm25s needs at least one term
        vocab[""] = 0
    retriever = bm25s.BM25(k1=k1, b=b)
    retriever.index(bm25s.tokenization.Tokenized(ids=ids, vocab=vocab), show_progress=False)
    return retriever


def top_positions(scores: np.ndarray, k: int) -> list[int]:
    """The positions of the k highest positive scores, best first (ties: lower position first)."""
    positive = np.flatnonzero(scores > 0)
    if positive.size == 0:
        return []
    if positive.size > k:
        positive = positive[np.argpartition(-scores[positive], k - 1)[:k]]
    return list(positive[np.argsort(-scores[positive], kind="stable")])


def fuse(rankings: list[list[int]], k: int) -> list[tuple[int, float]]:
    """Reciprocal-rank fusion: the k best keys with their fused scores (ties: first seen first)."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking):
            fused[key] = fused.get(key, 0.0) + 1.0 / (RRF_K + rank + 1)
    return sorted(fused.items(), key=lambda item: -item[1])[:k]


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1 (a zero row stays zero)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1, norms)


class ChunkColumns:
    """What both indexes keep per chunk, in chunk order: id, validity dates, optional vector."""

    def __init__(self, chunk_ids: np.ndarray, valid_from: np.ndarray, valid_to: np.ndarray,
                 vectors: np.ndarray | None):
        self.chunk_ids = chunk_ids
        self.valid_from = valid_from
        self.valid_to = valid_to
        self.vectors = vectors

    def __len__(self) -> int:
        return len(self.chunk_ids)

    def in_force_ids(self, day: int) -> set[int]:
        return {int(c) for c in self.chunk_ids[in_force(self.valid_from, self.valid_to, day)]}

    def valid_until(self, chunk_ids: set[int]) -> dict[int, int]:
        # Called for every search with the few hits: select them in numpy, not a Python loop over all chunks.
        wanted = np.isin(self.chunk_ids, np.fromiter(chunk_ids, dtype=np.int64, count=len(chunk_ids)))
        return dict(zip(self.chunk_ids[wanted].tolist(), self.valid_to[wanted].tolist(), strict=True))

    def vector_ranking(self, vector: np.ndarray, mask: np.ndarray) -> list[int]:
        """Positions of the chunks nearest `vector` (cosine) where `mask` (the search's in-force
        mask, 1 or 0 per chunk) is 1, best first."""
        query = vector.astype(np.float32) / (np.linalg.norm(vector) or 1)
        return top_positions((self.vectors @ query + 1.0) * mask, CANDIDATES)


class CollectionIndex(ChunkColumns):
    def __init__(self, chunk_ids: np.ndarray, valid_from: np.ndarray, valid_to: np.ndarray,
                 morph: bm25s.BM25 | None, grams: bm25s.BM25 | None, vectors: np.ndarray | None,
                 keyed: KeyedIndex | None = None):
        super().__init__(chunk_ids, valid_from, valid_to, vectors)
        self.morph = morph
        self.grams = grams
        self.keyed = keyed

    @classmethod
    def build(cls, inputs: list[IndexInput], keyed: KeyedIndex | None = None) -> CollectionIndex:
        if not inputs:  # an empty collection: nothing to score
            empty = np.array([], dtype=np.int64)
            return cls(empty, empty, empty, None, None, None, keyed)
        fields = [field_terms(keyed, i.morphemes, i.gram_text) for i in inputs]
        morph = _bm25([f[0] for f in fields], k1=0.9, b=0.4)
        grams = _bm25([f[1] for f in fields], k1=1.2, b=0.75)
        vectors = None
        if inputs and all(i.vector is not None for i in inputs):
            vectors = unit_rows(np.vstack([i.vector for i in inputs]).astype(np.float32))
        return cls(np.array([i.chunk_id for i in inputs], dtype=np.int64),
                   np.array([i.valid_from for i in inputs], dtype=np.int64),
                   np.array([i.valid_to for i in inputs], dtype=np.int64), morph, grams, vectors, keyed)

    def search(self, morphemes: list[str], text: str, k: int, as_of: date | None = None,
               vector: np.ndarray | None = None) -> list[Hit]:
        """Reciprocal-rank fusion of the BM25 fields (and vectors when both sides have them)."""
        if not len(self) or self.morph is None or self.grams is None:
            return []
        mask = in_force(self.valid_from, self.valid_to, day_number(as_of)).astype(np.float32)
        rankings = []
        morph_terms, gram_terms = field_terms(self.keyed, morphemes, text)
        for retriever, terms in ((self.morph, morph_terms), (self.grams, gram_terms)):
            ids = retriever.get_tokens_ids(terms)
            if ids:
                scores = retriever.get_scores_from_ids(ids, weight_mask=mask)
                rankings.append(top_positions(np.asarray(scores), CANDIDATES))
        if vector is not None and self.vectors is not None:
            rankings.append(self.vector_ranking(vector, mask))
        return [Hit(int(self.chunk_ids[p]), score) for p, score in fuse(rankings, k)]

    # -- persistence ------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        # A partial folder of its own: another thread or process may be saving the same generation.
        partial = directory.with_name(f"{directory.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        partial.mkdir(parents=True)
        np.save(partial / "chunk_ids.npy", self.chunk_ids)
        np.save(partial / "valid_from.npy", self.valid_from)
        np.save(partial / "valid_to.npy", self.valid_to)
        if self.vectors is not None and self.keyed is not None:  # sealed at rest; opened into memory
            buffer = io.BytesIO()
            np.save(buffer, np.ascontiguousarray(self.vectors))
            (partial / "vectors.sealed").write_bytes(self.keyed.seal(buffer.getvalue()))
        elif self.vectors is not None:
            np.save(partial / "vectors.npy", self.vectors)
        if self.morph is not None and self.grams is not None:
            self.morph.save(partial / "morph", show_progress=False)
            self.grams.save(partial / "grams", show_progress=False)
        (partial / "complete.json").write_text(json.dumps({"chunks": len(self), "keyed": self.keyed is not None}))
        shutil.rmtree(directory, ignore_errors=True)
        try:
            partial.rename(directory)
        except OSError:  # another saver got there first with the same generation: keep theirs
            shutil.rmtree(partial, ignore_errors=True)

    @classmethod
    def load(cls, directory: Path, keyed: KeyedIndex | None = None) -> CollectionIndex | None:
        """The saved index, or None when there is none, or it was built keyed and is wanted clear
        (or the other way round: the collection became keyed since)."""
        try:
            meta = json.loads((directory / "complete.json").read_text())
        except (OSError, ValueError):
            return None
        if bool(meta.get("keyed")) != (keyed is not None):
            return None
        if not (directory / "morph").is_dir():
            empty = np.array([], dtype=np.int64)
            return cls(empty, empty, empty, None, None, None, keyed)
        vectors = None
        if (directory / "vectors.sealed").is_file() and keyed is not None:
            vectors = np.load(io.BytesIO(keyed.open((directory / "vectors.sealed").read_bytes())))
        elif (directory / "vectors.npy").is_file():
            vectors = np.load(directory / "vectors.npy", mmap_mode="r")
        return cls(
            np.load(directory / "chunk_ids.npy"), np.load(directory / "valid_from.npy"),
            np.load(directory / "valid_to.npy"),
            bm25s.BM25.load(directory / "morph", mmap=True, show_progress=False),
            bm25s.BM25.load(directory / "grams", mmap=True, show_progress=False),
            vectors, keyed,
        )
