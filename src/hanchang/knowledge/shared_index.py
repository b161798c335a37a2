"""The shared retrieval index, inside PostgreSQL: every API host queries the same postings.

The same two BM25 fields as the embedded index (`index.py`: Kiwi morphemes with adjacent pairs,
k1 0.9 b 0.4; character bigrams, k1 1.2 b 0.75; Lucene's idf), fused by the same reciprocal-rank
rule, so a collection ranks alike on either. Terms (ids) live in `search_terms`, each chunk's
validity, field lengths and term ids in `search_chunks`, and postings in `search_blocks`: per
term, a few blocks of packed (chunk, tf, chunk length) records, so a query reads each of its
terms' postings as a handful of byte strings (a common bigram of 50,000 chunks is one 500 kB
read, not 50,000 rows). A term's document frequency is counted from those postings at query
time (the ones of chunks the view holds): a search reads them all anyway, so no stored count has
to be kept up to date on every change, and the frequency always agrees with the view's chunks.

Synchronising: the database's chunks are the truth, `collections.index_generation` says when
they changed. `sync` brings the index to the current generation in one transaction, under a
per-collection advisory lock: the chunks that are new get a block per term, the ones that are gone
are dropped from `search_chunks`, and validity is updated when versions changed. A view holds
only live chunks, so a removed chunk's postings are ignored (and not counted) at once and dropped
from its blocks when they are next merged (a term with more than MAX_BLOCKS blocks has its
smaller ones merged). The host that ingested syncs right after its commit, before its upload
returns; any host whose search finds a collection's generation ahead syncs first (or, while
another process is syncing it, answers from what is committed), so a document ingested anywhere
is found everywhere once its upload returns.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from itertools import chain, count
from types import SimpleNamespace

import numpy as np
from sqlalchemy import bindparam, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from hanchang.core.versions import OPEN_END, day_number, in_force, version_validity
from hanchang.knowledge.index import (
    CANDIDATES,
    ChunkColumns,
    Hit,
    KeyedIndex,
    field_terms,
    fuse,
    top_positions,
    unit_rows,
)
from hanchang.knowledge.ingest import indexed_text
from hanchang.knowledge.sealed_text import agency_of_collection, readable_rows
from hanchang.store.db import Database
from hanchang.store.keyring import keyring_of
from hanchang.store.tables import (
    Chunk,
    Collection,
    Document,
    DocumentVersion,
    SearchChunk,
    SearchCollection,
    SearchTerm,
)

MORPH, GRAMS = 1, 2
PARAMS = {MORPH: (0.9, 0.4), GRAMS: (1.2, 0.75)}  # k1, b: as the embedded index
LOCK_CLASS = 0x4843  # pg_advisory_xact_lock(class, collection id): one sync of a collection at a time
ADD_BATCH = 5_000  # chunks per round of a sync (a round of 5,000 holds ≈ 130 MB more than one of 2,000)
MAX_BLOCKS = 8  # a term's blocks before its smaller ones are merged
ANALYZE_AFTER = 2_000  # chunks added by one sync after which the statistics are refreshed in any case
# A posting: chunk id, tf, the chunk's length in the field; big-endian, packed.
POSTING = np.dtype([("chunk", ">i4"), ("tf", ">i2"), ("dl", ">i4")])
TERM_ID = np.dtype(">i4")


def idf(n: int, df: int) -> float:
    """Lucene's idf, as bm25s computes it."""
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


_FIELDS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="search-field")


class SharedCollectionIndex(ChunkColumns):
    """One collection's view of the shared index, as of one generation (`RetrievalIndex`)."""

    def __init__(self, db: Database, collection_id: int, chunk_ids: np.ndarray, valid_from: np.ndarray,
                 valid_to: np.ndarray, totals: dict[int, int], vectors: np.ndarray | None,
                 keyed: KeyedIndex | None = None):
        super().__init__(chunk_ids, valid_from, valid_to, vectors)
        self.db = db
        self.keyed = keyed
        self.collection_id = collection_id
        n = len(chunk_ids)
        self._avgdl = {field: (totals[field] / n if n else 1.0) or 1.0 for field in PARAMS}
        self._in_force_cache: dict[int, np.ndarray] = {}

    @classmethod
    def load(cls, db: Database, collection_id: int) -> SharedCollectionIndex:
        with db.session() as session:
            rows = session.execute(
                select(SearchChunk.chunk_id, SearchChunk.valid_from, SearchChunk.valid_to,
                       SearchChunk.morph_len, SearchChunk.gram_len)
                .where(SearchChunk.collection_id == collection_id).order_by(SearchChunk.chunk_id)).all()
            keyed = keyed_index(session, collection_id)
            vectors = _vectors(session, collection_id, [r.chunk_id for r in rows])
        columns = list(zip(*rows, strict=True)) if rows else [(), (), (), (), ()]
        ids, starts, ends, morph, grams = (np.array(c, dtype=np.int64) for c in columns)
        return cls(db, collection_id, ids, starts, ends, {MORPH: int(morph.sum()), GRAMS: int(grams.sum())},
                   vectors, keyed)

    # -- validity ------------------------------------------------------------------------------
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

        # The two fields at once, each on a connection of its own (two database backends share the work).
        morph_terms, gram_terms = field_terms(self.keyed, morphemes, text)
        grams = _FIELDS.submit(field_top, GRAMS, gram_terms)
        rankings = [r for r in (field_top(MORPH, morph_terms), grams.result()) if r is not None]
        if vector is not None and self.vectors is not None:
            rankings.append([int(self.chunk_ids[p]) for p in self.vector_ranking(vector, mask)])
        return [Hit(chunk_id, score) for chunk_id, score in fuse(rankings, k)]

    def _field_top(self, session: Session, field: int, terms: list[str], mask: np.ndarray) -> list[int] | None:
        """The field's best CANDIDATES chunk ids (score order, then chunk order), or None when no
        query term occurs in the collection (the field then takes no part, as in bm25s)."""
        wanted = Counter(terms)
        known = dict(session.execute(
            select(SearchTerm.id, SearchTerm.term)
            .where(SearchTerm.collection_id == self.collection_id, SearchTerm.field == field,
                   SearchTerm.term.in_(list(wanted)))).all())
        if not known:
            return None
        blocks: dict[int, list[np.ndarray]] = defaultdict(list)
        for term_id, postings in read_blocks(session, list(known)):
            blocks[term_id].append(postings)
        n = len(self)
        k1, b = PARAMS[field]
        avgdl = self._avgdl[field]
        scores = np.zeros(n)  # by position in the view (chunk order)
        occurs = False
        for term_id, parts in blocks.items():
            postings = parts[0] if len(parts) == 1 else np.concatenate(parts)  # a term's blocks at once
            positions, held = locate(self.chunk_ids, postings["chunk"])  # live chunks this view holds
            df = int(held.sum())
            if not df:
                continue
            occurs = True
            weight = wanted[known[term_id]] * idf(n, df)  # a repeated query term counts again
            tf, dl = postings["tf"][held].astype(np.float64), postings["dl"][held].astype(np.float64)
            scores += np.bincount(positions[held], weights=weight * tf / (tf + k1 * (1 - b + b * dl / avgdl)),
                                  minlength=n)
        if not occurs:
            return None
        best = top_positions(scores * mask, CANDIDATES)  # score, then chunk order (as the embedded index)
        return self.chunk_ids[best].tolist()


def locate(sorted_ids: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each of `ids` stands in `sorted_ids`, and whether it is there at all."""
    if not len(sorted_ids):
        return np.zeros(len(ids), dtype=np.int64), np.zeros(len(ids), dtype=bool)
    positions = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
    return positions, sorted_ids[positions] == ids


def read_blocks(session: Session, term_ids: list[int]) -> Iterable[tuple[int, np.ndarray]]:
    """(term id, postings) per block of these terms, straight from the bytes PostgreSQL sends."""
    cursor = session.connection().connection.dbapi_connection.cursor(binary=True)
    try:
        cursor.execute("SELECT term_id, postings FROM search_blocks WHERE term_id = ANY(%s)", (term_ids,))
        rows = cursor.fetchall()
    finally:
        cursor.close()
    return [(term_id, np.frombuffer(blob, dtype=POSTING)) for term_id, blob in rows]


def _vectors(session: Session, collection_id: int, chunk_ids: list[int]) -> np.ndarray | None:
    """The chunks' embeddings, normalised, in chunk order (None unless every chunk has one)."""
    has = session.scalar(select(func.count()).select_from(Chunk)
                         .where(Chunk.collection_id == collection_id, Chunk.embedding.is_not(None)))
    if not chunk_ids or has != len(chunk_ids):
        return None
    rows = session.execute(select(Chunk.id, Chunk.version_id, Chunk.ordinal, Chunk.collection_id, Chunk.text,
                                  Chunk.section, Chunk.embedding).where(Chunk.collection_id == collection_id)).all()
    opened = readable_rows(keyring_of(session), {collection_id: agency_of_collection(session, collection_id)},
                           rows, session)
    blobs = {row["id"]: row["embedding"] for row in opened}
    if set(blobs) != set(chunk_ids):
        return None
    return unit_rows(np.vstack([np.frombuffer(blobs[c], dtype=np.float32) for c in chunk_ids]))


def keyed_index(session: Session, collection_id: int) -> KeyedIndex | None:
    row = session.execute(select(Collection.agency_id, Collection.keyed_index)
                          .where(Collection.id == collection_id)).first()
    if row is None or not row.keyed_index:
        return None
    return KeyedIndex.of(keyring_of(session), row.agency_id, collection_id, session)


# -- keeping the index in step with the chunks -------------------------------------------------------
def sync(db: Database, collection_id: int, wait: bool = True) -> bool | None:
    """Bring the collection's index to its current generation (one transaction). Returns False
    when the collection no longer exists, None when another process is syncing it and `wait` is
    False."""
    with db.session() as session:
        if not wait:
            if not session.scalar(text("SELECT pg_try_advisory_xact_lock(:c, :k)"),
                                  {"c": LOCK_CLASS, "k": collection_id}):
                return None
        else:
            session.execute(text("SELECT pg_advisory_xact_lock(:c, :k)"), {"c": LOCK_CLASS, "k": collection_id})
        generation = session.scalar(select(Collection.index_generation).where(Collection.id == collection_id))
        if generation is None:
            _clear(session, collection_id)
            return False
        done = session.execute(select(SearchCollection.generation, SearchCollection.keyed)
                               .where(SearchCollection.collection_id == collection_id)).first()
        keyed = keyed_index(session, collection_id)
        if done is not None and done.keyed != (keyed is not None):
            _clear(session, collection_id)  # the collection became keyed: every term is hashed anew
            done = None
        if done is not None and done.generation == generation:
            return True
        current = dict(session.execute(select(Chunk.id, Chunk.version_id)
                                       .where(Chunk.collection_id == collection_id)).all())
        held = {row.chunk_id: (row.valid_from, row.valid_to) for row in session.execute(
            select(SearchChunk.chunk_id, SearchChunk.valid_from, SearchChunk.valid_to)
            .where(SearchChunk.collection_id == collection_id))}
        alive = np.array(sorted(current), dtype=np.int64)  # what merged blocks keep postings of
        gone = [c for c in held if c not in current]
        if gone:
            _remove(session, gone, alive)
        versions = session.execute(
            select(DocumentVersion.id, DocumentVersion.document_id, DocumentVersion.effective_from)
            .join(Document, Document.id == DocumentVersion.document_id)
            .where(Document.collection_id == collection_id)
            .order_by(DocumentVersion.document_id, DocumentVersion.number)).all()
        validity = version_validity(versions)
        new = sorted(c for c in current if c not in held)
        term_ids = TermIds(collection_id)  # kept across the rounds: a bulk load looks up each term once
        for start in range(0, len(new), ADD_BATCH):
            _add(session, term_ids, new[start:start + ADD_BATCH], validity, alive, keyed)
        if new and _statistics_stale(session, len(new)):
            # Fresh statistics now, not at autovacuum's turn: without them the planner's guesses
            # made searches of a first upload 4x slower (measured on KorQuAD dev).
            for table in ("search_terms (collection_id, field, term)", "search_blocks (term_id)",
                          "search_chunks (collection_id)"):
                session.execute(text(f"ANALYZE {table}"))
        changed = [{"cid": c, "vf": span[0], "vt": span[1]}
                   for c, version_id in current.items() if c in held
                   and (span := validity.get(version_id, (0, OPEN_END))) != held[c]]
        if changed:
            table = SearchChunk.__table__
            session.execute(update(table).where(table.c.chunk_id == bindparam("cid"))
                            .values(valid_from=bindparam("vf"), valid_to=bindparam("vt")), changed)
        session.execute(pg_insert(SearchCollection).values(collection_id=collection_id, generation=generation,
                                                           keyed=keyed is not None)
                        .on_conflict_do_update(index_elements=[SearchCollection.collection_id],
                                               set_={"generation": generation, "keyed": keyed is not None}))
    return True


def _statistics_stale(session: Session, added: int) -> bool:
    """Whether adding `added` chunks calls for fresh planner statistics: never analysed, or a
    tenth or more of the chunks held are new, or a large load."""
    row = session.execute(text(
        "SELECT n_live_tup, last_analyze IS NULL AND last_autoanalyze IS NULL FROM pg_stat_user_tables "
        "WHERE relid = 'search_chunks'::regclass")).first()
    held, never = row if row else (0, True)
    return never or added * 10 >= held or added >= ANALYZE_AFTER


def _add(session: Session, term_ids: TermIds, chunk_ids: list[int], validity: dict[int, tuple[int, int]],
         alive: np.ndarray, keyed: KeyedIndex | None = None) -> None:
    """Index these chunks: a block per term, each chunk's term ids.

    Terms become integers once (dict lookups in C), and the postings are counted and grouped by
    numpy: a batch holds some 400,000 postings, too many to build one by one in Python."""
    found = session.execute(
        select(Chunk.id, Chunk.version_id, Chunk.ordinal, Chunk.collection_id, Chunk.terms, Chunk.text,
               Chunk.section, Document.id.label("document_id"), Document.title)
        .join(Document, Document.id == Chunk.document_id).where(Chunk.id.in_(chunk_ids))
        .order_by(Chunk.id)).all()
    if not found:
        return
    agencies = {c: agency_of_collection(session, c) for c in {row.collection_id for row in found}}
    rows = [SimpleNamespace(**row) for row in readable_rows(keyring_of(session), agencies, found, session)]
    if not rows:
        return
    n = len(rows)
    both = [field_terms(keyed, row.terms.split(), indexed_text(row.title, row.section, row.text)) for row in rows]
    fields = {MORPH: [terms[0] for terms in both], GRAMS: [terms[1] for terms in both]}
    lengths = {field: np.array([len(terms) for terms in lists], dtype=np.int64) for field, lists in fields.items()}
    # Number the batch's distinct terms: the morpheme field's first, then the bigrams'.
    keys: list[tuple[int, str]] = []
    tokens, chunk_of_token = [], []
    for field, lists in fields.items():
        if field == GRAMS:
            first_gram = len(keys)
        vocabulary = dict.fromkeys(chain.from_iterable(lists))
        number = dict(zip(vocabulary, count(len(keys)), strict=False))
        keys += [(field, term) for term in vocabulary]
        total = int(lengths[field].sum())
        tokens.append(np.fromiter(map(number.__getitem__, chain.from_iterable(lists)), dtype=np.int64, count=total))
        chunk_of_token.append(np.repeat(np.arange(n), lengths[field]))
    # One posting per (term, chunk): unique pairs, sorted by term then chunk, with their counts.
    pairs, tf = np.unique(np.concatenate(tokens) * n + np.concatenate(chunk_of_token), return_counts=True)
    term, position = pairs // n, pairs % n
    postings = np.empty(len(pairs), dtype=POSTING)
    postings["chunk"] = np.array([row.id for row in rows], dtype=np.int64)[position]
    postings["tf"] = np.minimum(tf, 32767)
    postings["dl"] = np.where(term < first_gram, lengths[MORPH][position], lengths[GRAMS][position])
    ids = term_ids.resolve(session, keys)  # local term number -> term id
    global_ids = ids[term]
    by_chunk = np.lexsort((global_ids, position))  # each chunk's term ids, sorted
    chunk_starts = np.searchsorted(position[by_chunk], np.arange(n + 1))
    sorted_terms = global_ids[by_chunk].astype(TERM_ID)
    session.execute(pg_insert(SearchChunk), [
        {"chunk_id": row.id, "collection_id": term_ids.collection_id,
         **dict(zip(("valid_from", "valid_to"), validity.get(row.version_id, (0, OPEN_END)), strict=True)),
         "morph_len": int(lengths[MORPH][i]), "gram_len": int(lengths[GRAMS][i]),
         "terms": sorted_terms[chunk_starts[i]:chunk_starts[i + 1]].tobytes()}
        for i, row in enumerate(rows)])
    if not len(term):  # chunks without any term (e.g. only punctuation)
        return
    block = rows[0].id  # unique among a term's blocks: chunk ids are never reused
    bounds = np.flatnonzero(np.diff(term)) + 1
    starts, ends = np.concatenate(([0], bounds)).tolist(), np.concatenate((bounds, [len(term)])).tolist()
    block_terms = ids[term[starts]].tolist()
    _write_blocks(session, [(term_id, block, postings[a:b].tobytes())
                            for term_id, a, b in zip(block_terms, starts, ends, strict=True)])
    _merge(session, sorted(block_terms), alive)


def _write_blocks(session: Session, blocks: list[tuple[int, int, bytes]]) -> None:
    cursor = session.connection().connection.dbapi_connection.cursor()
    try:
        with cursor.copy("COPY search_blocks (term_id, block, postings) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int4", "int4", "bytea"])  # binary: no hex text for the server to parse
            for block in blocks:
                copy.write_row(block)
    finally:
        cursor.close()


def _merge(session: Session, term_ids: list[int], alive: np.ndarray) -> None:
    """Merge the smaller blocks of terms that have more than MAX_BLOCKS (tiered: the largest is
    rewritten only once the others together reach half its size), dropping postings of chunks not
    in `alive` (the collection's chunk ids, sorted)."""
    crowded = [t for t, in session.execute(
        select(text("term_id")).select_from(text("search_blocks"))
        .where(text("term_id = ANY(:ids)")).group_by(text("term_id"))
        .having(text(f"count(*) > {MAX_BLOCKS}")), {"ids": term_ids})]
    if not crowded:
        return
    cursor = session.connection().connection.dbapi_connection.cursor(binary=True)
    try:
        cursor.execute("SELECT term_id, block, postings FROM search_blocks WHERE term_id = ANY(%s)", (crowded,))
        by_term: dict[int, list[tuple[int, np.ndarray]]] = defaultdict(list)
        for term_id, block, blob in cursor.fetchall():
            by_term[term_id].append((block, np.frombuffer(blob, dtype=POSTING)))
    finally:
        cursor.close()
    dropped: list[tuple[int, int]] = []
    merged: list[tuple[int, int, bytes]] = []
    for term_id, blocks in by_term.items():
        blocks.sort(key=lambda item: -len(item[1]))
        largest, rest = blocks[0], blocks[1:]
        chosen = blocks if 2 * sum(len(p) for _, p in rest) >= len(largest[1]) else rest
        together = np.concatenate([p for _, p in chosen])
        together = together[locate(alive, together["chunk"])[1]]
        together = np.sort(together, order="chunk")  # (concatenate gives native byte order: packed again below)
        dropped += [(term_id, block) for block, _ in chosen]
        if len(together):
            merged.append((term_id, min(block for block, _ in chosen), together.astype(POSTING).tobytes()))
    session.execute(text("DELETE FROM search_blocks b USING unnest(CAST(:terms AS int[]), CAST(:blocks AS int[])) "
                         "AS d(term_id, block) WHERE b.term_id = d.term_id AND b.block = d.block"),
                    {"terms": [t for t, _ in dropped], "blocks": [b for _, b in dropped]})
    _write_blocks(session, merged)


class TermIds:
    """Term ids of one collection, looked up (or inserted, for new terms) during one sync and
    remembered for the rest of it. Only the sync holding the collection's lock writes its terms."""

    def __init__(self, collection_id: int):
        self.collection_id = collection_id
        self._known: dict[tuple[int, str], int] = {}

    def resolve(self, session: Session, keys: list[tuple[int, str]]) -> np.ndarray:
        """The ids of these (field, term)s, in their order."""
        unknown = sorted({key for key in keys if key not in self._known})
        if unknown:
            self._known.update(self._fetch(session, unknown))
        return np.fromiter(map(self._known.__getitem__, keys), dtype=np.int64, count=len(keys))

    def _fetch(self, session: Session, keys: list[tuple[int, str]]) -> dict[tuple[int, str], int]:
        """One statement over arrays: the ids of the terms already there, and new ones inserted."""
        cursor = session.connection().connection.dbapi_connection.cursor()
        try:
            cursor.execute(
                "WITH wanted (f, t) AS (SELECT * FROM unnest(%(fields)s::smallint[], %(terms)s::text[])), "
                "added AS (INSERT INTO search_terms (collection_id, field, term) "
                "          SELECT %(collection)s, f, t FROM wanted ORDER BY f, t "
                "          ON CONFLICT (collection_id, field, term) DO NOTHING RETURNING id, field, term) "
                "SELECT id, field, term FROM added "
                "UNION ALL "  # the statement's snapshot: the terms there before it, not the ones it adds
                "SELECT s.id, s.field, s.term FROM search_terms s JOIN wanted w ON s.field = w.f AND s.term = w.t "
                "WHERE s.collection_id = %(collection)s",
                {"collection": self.collection_id, "fields": [f for f, _ in keys], "terms": [t for _, t in keys]})
            return {(field, term): term_id for term_id, field, term in cursor.fetchall()}
        finally:
            cursor.close()


def _remove(session: Session, chunk_ids: Iterable[int], alive: np.ndarray) -> None:
    """Drop chunks: no view holds them from now on, so their postings are no longer read or
    counted; they leave their terms' blocks at those terms' next merge."""
    chunk_ids = list(chunk_ids)
    for start in range(0, len(chunk_ids), ADD_BATCH):
        batch = chunk_ids[start:start + ADD_BATCH]
        held = session.execute(select(SearchChunk.terms).where(SearchChunk.chunk_id.in_(batch))).scalars().all()
        session.execute(delete(SearchChunk).where(SearchChunk.chunk_id.in_(batch)))
        if held:
            _merge(session, np.unique(np.concatenate([np.frombuffer(t, dtype=TERM_ID) for t in held])).tolist(),
                   alive)


def _clear(session: Session, collection_id: int) -> None:
    session.execute(delete(SearchTerm).where(SearchTerm.collection_id == collection_id))  # blocks cascade
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
        if sync(self.db, collection.id, wait=False) is None:
            # Another process is writing this collection's change (a bulk upload may take minutes,
            # and its upload has not returned yet): search what is committed meanwhile, rather
            # than wait; the next search tries again.
            return cached[1] if cached else SharedCollectionIndex.load(self.db, collection.id)
        return self._view(collection.id, collection.index_generation)

    def rebuild(self, collection_id: int, generation: int) -> SharedCollectionIndex:
        sync(self.db, collection_id)
        return self._view(collection_id, generation)

    def _view(self, collection_id: int, generation: int) -> SharedCollectionIndex:
        """Load the synchronised index's view and keep it for `generation`."""
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
