"""The shared retrieval index, inside PostgreSQL: every API host queries the same postings.

The same two BM25 fields as the embedded index (`index.py`: Kiwi morphemes with adjacent pairs,
k1 0.9 b 0.4; character bigrams, k1 1.2 b 0.75; Lucene's idf), fused by the same reciprocal-rank
rule, so a collection ranks alike on either. Postings (term, chunk, tf, chunk length) live in
`search_postings`, document frequencies in `search_terms`, each chunk's validity and lengths in
`search_chunks`.

Synchronising: the database's chunks are the truth, `collections.index_generation` says when
they changed. `sync` brings the postings to the current generation in one transaction, under a
per-collection advisory lock, adding the chunks that are new and removing the ones that are
gone (document frequencies adjusted by the same amounts), and updating validity when versions
changed. The host that ingested syncs right after its commit; any host that searches a
collection whose generation is ahead syncs first (or waits on the lock for the one that is),
so a document ingested anywhere is found everywhere at once.

Scoring: a field's top candidates are computed exactly with MaxScore pruning — the query's terms
are read rarest first, and once the k-th best partial score exceeds what all unread terms
together could still add, the long lists of common terms (frequent character bigrams) are read
only for the chunks that can still make the top k.
"""

from __future__ import annotations

import math
import os
import threading
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import numpy as np
from sqlalchemy import bindparam, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from hanchang.core.versions import OPEN_END, day_number, in_force, version_validity
from hanchang.knowledge.analysis import char_bigrams, with_pairs
from hanchang.knowledge.index import CANDIDATES, Hit, fuse, top_positions
from hanchang.knowledge.ingest import indexed_text
from hanchang.store.db import Database
from hanchang.store.tables import (
    Chunk,
    Collection,
    Document,
    DocumentVersion,
    SearchChunk,
    SearchCollection,
    SearchPosting,
    SearchTerm,
)

MORPH, GRAMS = 1, 2
PARAMS = {MORPH: (0.9, 0.4), GRAMS: (1.2, 0.75)}  # k1, b: as the embedded index
LOCK_CLASS = 0x4843  # pg_advisory_xact_lock(class, collection id): one sync of a collection at a time
FETCH_ROWS = 20_000  # postings read in one round before the pruning bound is checked again
# The share of a term's idf an unread term is taken to add to a chunk at most. 1.0 is MaxScore's
# exact bound (BM25's tf part is below 1); a chunk holding a common term once, at average length,
# gets 1/(1+k1) of it (0.45 for bigrams, 0.53 for morphemes). See benchmarks/retrieval_scale.py
# for the agreement with exhaustive scoring at 100k chunks.
BOUND_SHARE = float(os.environ.get("HANCHANG_SEARCH_BOUND_SHARE", "1.0"))
PROBE_COST = 40  # a (term, chunk) probe costs about as much as reading this many list entries (measured)
ADD_BATCH = 2_000  # chunks analysed and written per round of a sync
ANALYZE_AFTER = 50_000  # postings added by one sync after which the tables' statistics are refreshed

def idf(n: int, df: int) -> float:
    """Lucene's idf, as bm25s computes it."""
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


_FIELDS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="search-field")


class SharedCollectionIndex:
    """One collection's view of the shared index, as of one generation (`RetrievalIndex`)."""

    def __init__(self, db: Database, collection_id: int, chunk_ids: np.ndarray, valid_from: np.ndarray,
                 valid_to: np.ndarray, totals: dict[int, int], vectors: np.ndarray | None):
        self.db = db
        self.collection_id = collection_id
        self.chunk_ids = chunk_ids
        self.valid_from = valid_from
        self.valid_to = valid_to
        self.vectors = vectors
        n = len(chunk_ids)
        self._avgdl = {field: (totals[field] / n if n else 1.0) or 1.0 for field in PARAMS}
        self._position = {int(c): i for i, c in enumerate(chunk_ids.tolist())}
        self._in_force_cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.chunk_ids)

    @classmethod
    def load(cls, db: Database, collection_id: int) -> SharedCollectionIndex:
        with db.session() as session:
            rows = session.execute(
                select(SearchChunk.chunk_id, SearchChunk.valid_from, SearchChunk.valid_to,
                       SearchChunk.morph_len, SearchChunk.gram_len)
                .where(SearchChunk.collection_id == collection_id).order_by(SearchChunk.chunk_id)).all()
            vectors = _vectors(session, collection_id, [r.chunk_id for r in rows])
        columns = list(zip(*rows, strict=True)) if rows else [(), (), (), (), ()]
        ids, starts, ends, morph, grams = (np.array(c, dtype=np.int64) for c in columns)
        return cls(db, collection_id, ids, starts, ends, {MORPH: int(morph.sum()), GRAMS: int(grams.sum())},
                   vectors)

    # -- validity ------------------------------------------------------------------------------
    def in_force_ids(self, day: int) -> set[int]:
        return {int(c) for c in self.chunk_ids[in_force(self.valid_from, self.valid_to, day)]}

    def valid_until(self, chunk_ids: set[int]) -> dict[int, int]:
        return {c: int(self.valid_to[self._position[c]]) for c in chunk_ids if c in self._position}

    def _in_force(self, day: int) -> np.ndarray:
        """1.0 where this view's chunk (in chunk order) is in force on `day`, else 0.0. Postings of
        chunks the view does not hold (written by a later sync) are left out until the next view."""
        mask = self._in_force_cache.get(day)
        if mask is None:
            mask = self._in_force_cache[day] = in_force(self.valid_from, self.valid_to, day).astype(np.float64)
            if len(self._in_force_cache) > 8:
                self._in_force_cache.pop(next(iter(self._in_force_cache)))
        return mask

    # -- search --------------------------------------------------------------------------------
    def search(self, morphemes: list[str], text: str, k: int, as_of: date | None = None,
               vector: np.ndarray | None = None) -> list[Hit]:
        if not len(self):
            return []
        mask = self._in_force(day_number(as_of))

        def field_top(field: int, terms: list[str]) -> list[int] | None:
            with self.db.session() as session:
                return self._field_top(session, field, terms, mask)

        # The two fields at once, each on a connection of its own: two server processes share a query.
        grams = _FIELDS.submit(field_top, GRAMS, char_bigrams(text))
        rankings = [r for r in (field_top(MORPH, with_pairs(morphemes)), grams.result()) if r is not None]
        if vector is not None and self.vectors is not None:
            query = vector.astype(np.float32) / (np.linalg.norm(vector) or 1)
            mask = in_force(self.valid_from, self.valid_to, day_number(as_of)).astype(np.float32)
            positions = top_positions((self.vectors @ query + 1.0) * mask, CANDIDATES)
            rankings.append([int(self.chunk_ids[p]) for p in positions])
        return [Hit(chunk_id, score) for chunk_id, score in fuse(rankings, k)]

    def _field_top(self, session: Session, field: int, terms: list[str], mask: np.ndarray) -> list[int] | None:
        """The field's best CANDIDATES chunk ids (score order, then chunk order), or None when no
        query term occurs in the collection (the field then takes no part, as in bm25s)."""
        wanted = Counter(terms)
        known = session.execute(
            select(SearchTerm.id, SearchTerm.term, SearchTerm.df)
            .where(SearchTerm.collection_id == self.collection_id, SearchTerm.field == field,
                   SearchTerm.term.in_(list(wanted)), SearchTerm.df > 0)).all()
        if not known:
            return None
        n = len(self)
        k1, b = PARAMS[field]
        avgdl = self._avgdl[field]
        # Each term's most it can add to a chunk's score (BM25's tf part is below 1).
        weight = {row.id: wanted[row.term] * idf(n, row.df) for row in known}
        order = sorted(known, key=lambda row: (row.df, row.id))  # rarest first
        remaining = sum(weight.values())
        scores = np.zeros(n)  # by position in the view (chunk order)
        kth = 0.0
        i = 0
        while i < len(order):
            batch, rows = [], 0
            while i < len(order) and (not batch or rows + order[i].df <= FETCH_ROWS):
                batch.append(order[i].id)
                rows += order[i].df
                i += 1
            self._add(scores, self._contributions(session, batch, weight, k1, b, avgdl))
            remaining -= sum(weight[t] for t in batch)
            masked = scores * mask
            if np.count_nonzero(masked) >= CANDIDATES:
                kth = float(np.partition(masked, n - CANDIDATES)[n - CANDIDATES])
                if kth > BOUND_SHARE * remaining + 1e-9:
                    break
        rest = order[i:]
        if rest:  # only chunks that can still reach the top need the common terms' postings
            masked = scores * mask
            hopeful = self.chunk_ids[(masked > 0) & (masked + BOUND_SHARE * remaining >= kth)]
            if len(hopeful):
                # Probing each (term, chunk) pair costs a few index pages, reading a whole list one
                # entry each: probe only when the pairs are few against the lists' length. Whole
                # lists add exact scores for every chunk, hopeful or not.
                probe = len(hopeful) * len(rest) * PROBE_COST < sum(row.df for row in rest)
                self._add(scores, self._contributions(session, [row.id for row in rest], weight, k1, b, avgdl,
                                                      hopeful.tolist() if probe else None))
        best = top_positions(scores * mask, CANDIDATES)  # score, then chunk order (as the embedded index)
        return self.chunk_ids[best].tolist()

    def _add(self, scores: np.ndarray, part: tuple[np.ndarray, np.ndarray]) -> None:
        """Add postings' contributions to the scores of the chunks this view holds."""
        chunk_ids, values = part
        if not len(chunk_ids):
            return
        positions = np.minimum(np.searchsorted(self.chunk_ids, chunk_ids), len(self.chunk_ids) - 1)
        held = self.chunk_ids[positions] == chunk_ids
        scores += np.bincount(positions[held], weights=values[held], minlength=len(scores))

    def _contributions(self, session: Session, term_ids: list[int], weight: dict[int, float], k1: float,
                       b: float, avgdl: float, chunks: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Each posting's BM25 contribution: (chunk ids, scores), for these terms (and chunks)."""
        lists = _postings(session, term_ids, chunks)
        if not lists:
            return np.empty(0, dtype=np.int64), np.empty(0)
        chunk_ids, scores = [], []
        for term_id, data in lists.items():
            tf, dl = data["tf"].astype(np.float64), data["dl"].astype(np.float64)
            chunk_ids.append(data["chunk"].astype(np.int64))
            scores.append(weight[term_id] * tf / (tf + k1 * (1 - b + b * dl / avgdl)))
        return np.concatenate(chunk_ids), np.concatenate(scores)


# PostgreSQL sends a term's postings as one bytea of (chunk_id int4, tf int2, dl int4) records,
# big-endian (`int4send`/`int2send`), read straight into numpy: one row per term, no Python object
# per posting (a row per posting costs more in the client than the whole scan in the server).
_POSTING = np.dtype([("chunk", ">i4"), ("tf", ">i2"), ("dl", ">i4")])
_POSTINGS_SQL = ("SELECT term_id, string_agg(int4send(chunk_id) || int2send(tf) || int4send(dl), ''::bytea) "
                 "FROM search_postings WHERE term_id = ANY(%s){chunks} GROUP BY term_id")


def _postings(session: Session, term_ids: list[int], chunks: list[int] | None) -> dict[int, np.ndarray]:
    """These terms' postings (restricted to `chunks` when given), by term id."""
    sql = _POSTINGS_SQL.format(chunks=" AND chunk_id = ANY(%s)" if chunks is not None else "")
    params = (term_ids, chunks) if chunks is not None else (term_ids,)
    cursor = session.connection().connection.dbapi_connection.cursor(binary=True)
    try:
        cursor.execute(sql, params)
        return {term_id: np.frombuffer(blob, dtype=_POSTING) for term_id, blob in cursor.fetchall()}
    finally:
        cursor.close()


def _vectors(session: Session, collection_id: int, chunk_ids: list[int]) -> np.ndarray | None:
    """The chunks' embeddings, normalised, in chunk order (None unless every chunk has one)."""
    has = session.scalar(select(func.count()).select_from(Chunk)
                         .where(Chunk.collection_id == collection_id, Chunk.embedding.is_not(None)))
    if not chunk_ids or has != len(chunk_ids):
        return None
    blobs = dict(session.execute(select(Chunk.id, Chunk.embedding).where(Chunk.collection_id == collection_id)).all())
    if set(blobs) != set(chunk_ids):
        return None
    matrix = np.vstack([np.frombuffer(blobs[c], dtype=np.float32) for c in chunk_ids])
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1, norms)


# -- keeping the postings in step with the chunks -------------------------------------------------
def sync(db: Database, collection_id: int) -> bool:
    """Bring the collection's postings to its current generation (one transaction). Returns
    False when the collection no longer exists."""
    with db.session() as session:
        session.execute(text("SELECT pg_advisory_xact_lock(:c, :k)"), {"c": LOCK_CLASS, "k": collection_id})
        generation = session.scalar(select(Collection.index_generation).where(Collection.id == collection_id))
        if generation is None:
            _clear(session, collection_id)
            return False
        done = session.scalar(select(SearchCollection.generation)
                              .where(SearchCollection.collection_id == collection_id))
        if done == generation:
            return True
        current = dict(session.execute(select(Chunk.id, Chunk.version_id)
                                       .where(Chunk.collection_id == collection_id)).all())
        held = {row.chunk_id: (row.valid_from, row.valid_to) for row in session.execute(
            select(SearchChunk.chunk_id, SearchChunk.valid_from, SearchChunk.valid_to)
            .where(SearchChunk.collection_id == collection_id))}
        gone = [c for c in held if c not in current]
        if gone:
            _remove(session, gone)
        versions = session.execute(
            select(DocumentVersion.id, DocumentVersion.document_id, DocumentVersion.effective_from)
            .join(Document, Document.id == DocumentVersion.document_id)
            .where(Document.collection_id == collection_id)
            .order_by(DocumentVersion.document_id, DocumentVersion.number)).all()
        validity = version_validity(versions)
        new = sorted(c for c in current if c not in held)
        added = sum(_add(session, collection_id, new[start:start + ADD_BATCH], validity)
                    for start in range(0, len(new), ADD_BATCH))
        if added >= ANALYZE_AFTER:  # fresh statistics, or the planner scans whole tables until autovacuum's turn
            for table in ("search_terms", "search_postings", "search_chunks"):
                session.execute(text(f"ANALYZE {table}"))
        changed = [{"cid": c, "vf": span[0], "vt": span[1]}
                   for c, version_id in current.items() if c in held
                   and (span := validity.get(version_id, (0, OPEN_END))) != held[c]]
        if changed:
            table = SearchChunk.__table__
            session.execute(update(table).where(table.c.chunk_id == bindparam("cid"))
                            .values(valid_from=bindparam("vf"), valid_to=bindparam("vt")), changed)
        session.execute(pg_insert(SearchCollection).values(collection_id=collection_id, generation=generation)
                        .on_conflict_do_update(index_elements=[SearchCollection.collection_id],
                                               set_={"generation": generation}))
    return True


def _add(session: Session, collection_id: int, chunk_ids: list[int], validity: dict[int, tuple[int, int]]) -> int:
    """Index these chunks; returns the number of postings written."""
    rows = session.execute(
        select(Chunk.id, Chunk.version_id, Chunk.terms, Chunk.text, Chunk.section, Document.title)
        .join(Document, Document.id == Chunk.document_id).where(Chunk.id.in_(chunk_ids))).all()
    postings: list[tuple[int, str, int, int, int]] = []  # field, term, chunk, tf, dl
    chunks = []
    for row in rows:
        morph = with_pairs(row.terms.split())
        grams = char_bigrams(indexed_text(row.title, row.section, row.text))
        for field, terms in ((MORPH, morph), (GRAMS, grams)):
            postings.extend((field, term, row.id, min(tf, 32767), len(terms)) for term, tf in Counter(terms).items())
        valid_from, valid_to = validity.get(row.version_id, (0, OPEN_END))
        chunks.append({"chunk_id": row.id, "collection_id": collection_id, "valid_from": valid_from,
                       "valid_to": valid_to, "morph_len": len(morph), "gram_len": len(grams)})
    if chunks:
        session.execute(pg_insert(SearchChunk), chunks)
    df = Counter((field, term) for field, term, *_ in postings)
    ids = _term_ids(session, collection_id, df)
    cursor = session.connection().connection.dbapi_connection.cursor()
    try:
        with cursor.copy("COPY search_postings (term_id, chunk_id, tf, dl) FROM STDIN") as copy:
            for field, term, chunk_id, tf, dl in postings:
                copy.write_row((ids[field, term], chunk_id, tf, dl))
    finally:
        cursor.close()
    return len(postings)


def _term_ids(session: Session, collection_id: int, df: Counter) -> dict[tuple[int, str], int]:
    """Insert or count up the terms (one statement over arrays); their ids. Sorted, so concurrent
    writers take row locks in one order."""
    items = sorted(df.items())
    cursor = session.connection().connection.dbapi_connection.cursor()
    try:
        cursor.execute(
            "INSERT INTO search_terms (collection_id, field, term, df) "
            "SELECT %s, f, t, n FROM unnest(%s::smallint[], %s::text[], %s::int[]) AS x(f, t, n) "
            "ORDER BY f, t "
            "ON CONFLICT (collection_id, field, term) DO UPDATE SET df = search_terms.df + EXCLUDED.df "
            "RETURNING id, field, term",
            (collection_id, [f for (f, _), _ in items], [t for (_, t), _ in items], [n for _, n in items]))
        return {(field, term): term_id for term_id, field, term in cursor.fetchall()}
    finally:
        cursor.close()


def _remove(session: Session, chunk_ids: Iterable[int]) -> None:
    chunk_ids = list(chunk_ids)
    for start in range(0, len(chunk_ids), ADD_BATCH):
        batch = chunk_ids[start:start + ADD_BATCH]
        removed = session.execute(delete(SearchPosting).where(SearchPosting.chunk_id.in_(batch))
                                  .returning(SearchPosting.term_id)).scalars().all()
        counts = Counter(removed)
        if counts:
            terms = SearchTerm.__table__
            session.execute(update(terms).where(terms.c.id == bindparam("tid")).values(df=terms.c.df - bindparam("n")),
                            [{"tid": t, "n": n} for t, n in sorted(counts.items())])
        session.execute(delete(SearchChunk).where(SearchChunk.chunk_id.in_(batch)))


def _clear(session: Session, collection_id: int) -> None:
    # By chunk: the terms may already be gone with the collection (their foreign key cascades).
    held = select(SearchChunk.chunk_id).where(SearchChunk.collection_id == collection_id)
    session.execute(delete(SearchPosting).where(SearchPosting.chunk_id.in_(held)))
    session.execute(delete(SearchTerm).where(SearchTerm.collection_id == collection_id))
    session.execute(delete(SearchChunk).where(SearchChunk.collection_id == collection_id))
    session.execute(delete(SearchCollection).where(SearchCollection.collection_id == collection_id))


class SharedIndexStore:
    """The shared index's side of `IndexStore`: per-process views cached by generation."""

    def __init__(self, db: Database):
        self.db = db
        self._cache: dict[int, tuple[int, SharedCollectionIndex]] = {}
        self._lock = threading.Lock()

    def get(self, collection: Collection) -> SharedCollectionIndex:
        cached = self._cache.get(collection.id)
        if cached and cached[0] == collection.index_generation:
            return cached[1]
        return self.rebuild(collection.id, collection.index_generation)

    def rebuild(self, collection_id: int, generation: int) -> SharedCollectionIndex:
        sync(self.db, collection_id)
        index = SharedCollectionIndex.load(self.db, collection_id)
        with self._lock:
            cached = self._cache.get(collection_id)
            if cached is None or cached[0] <= generation:
                self._cache[collection_id] = (generation, index)
        return index

    def forget(self, collection_id: int) -> None:
        self._cache.pop(collection_id, None)
        with self.db.session() as session:
            session.execute(text("SELECT pg_advisory_xact_lock(:c, :k)"), {"c": LOCK_CLASS, "k": collection_id})
            _clear(session, collection_id)
