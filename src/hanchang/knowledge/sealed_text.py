"""The knowledge base's stored text, sealed at rest when its passage is S or C (store/keyring.py).

Where each value is bound (the associated data): a chunk's text, section, terms and vector by
(its version, its ordinal), a document's title by the document's id, all under the agency that
owns the collection. A value that fails to open (tampered, moved) drops that passage — audited
by the keyring — and the rest is served.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from hanchang.core.grades import passage_grade
from hanchang.store.key_providers import KeyShredded
from hanchang.store.keyring import IntegrityFailure, Keyring, is_sealed, keyring_of
from hanchang.store.keyring import must_seal as keyring_must_seal
from hanchang.store.tables import Collection

log = logging.getLogger("hanchang.knowledge")
UNREADABLE_TITLE = "(열 수 없는 문서 · unreadable)"


def chunk_where(column: str, version_id: int, ordinal: int) -> str:
    return f"chunks.{column}:{version_id}:{ordinal}"


def title_where(document_id: int) -> str:
    return f"documents.title:{document_id}"


def must_seal(session: Session, collection: Collection, document_grade: str) -> bool:
    return keyring_must_seal(session, passage_grade(collection.grade, document_grade))


@dataclass
class ChunkFields:
    text: str
    section: str
    terms: str
    embedding: bytes | None


def seal_chunk(session: Session, agency_id: int, version_id: int, ordinal: int, fields: ChunkFields) -> ChunkFields:
    keyring = keyring_of(session)

    def seal(column: str, value: str) -> str:
        return keyring.seal(agency_id, chunk_where(column, version_id, ordinal), value, session)

    embedding = fields.embedding
    if embedding is not None:
        embedding = keyring.seal_bytes(agency_id, chunk_where("embedding", version_id, ordinal), embedding, session)
    return ChunkFields(seal("text", fields.text), seal("section", fields.section), seal("terms", fields.terms),
                       embedding)


def open_chunk(keyring: Keyring, agency_id: int, version_id: int, ordinal: int, fields: ChunkFields,
               session: Session | None = None) -> ChunkFields:
    """The chunk's fields in clear (raises IntegrityFailure for a tampered one)."""
    def opened(column: str, value: str) -> str:
        return keyring.open(agency_id, chunk_where(column, version_id, ordinal), value, session)

    embedding = fields.embedding
    if embedding is not None and is_sealed(embedding):
        embedding = keyring.open_bytes(agency_id, chunk_where("embedding", version_id, ordinal), embedding, session)
    return ChunkFields(opened("text", fields.text), opened("section", fields.section), opened("terms", fields.terms),
                       embedding)


def open_title(keyring: Keyring, agency_id: int, document_id: int, title: str, session: Session | None = None) -> str:
    try:
        return keyring.open(agency_id, title_where(document_id), title, session)
    except IntegrityFailure:
        return UNREADABLE_TITLE


def agency_of_collection(session: Session, collection_id: int) -> int:
    return session.scalar(select(Collection.agency_id).where(Collection.id == collection_id))


def readable_rows(keyring: Keyring, agency_of: dict[int, int], rows, session: Session | None = None) -> list[dict]:
    """Rows with `id, version_id, ordinal, collection_id, text, section` (and optionally `terms`,
    `embedding`, `document_id`, `title`) opened; a row that fails its integrity check, or whose
    keys are gone (shredded), is left out. `agency_of`: collection id -> agency id."""
    out = []
    titles: dict[int, str] = {}  # a document's title, opened once per call
    for row in rows:
        values = row._asdict()
        agency_id = agency_of[values["collection_id"]]
        try:
            fields = open_chunk(keyring, agency_id, values["version_id"], values["ordinal"],
                                ChunkFields(values["text"], values["section"], values.get("terms") or "",
                                            values.get("embedding")), session)
        except IntegrityFailure:
            log.warning("chunk %s failed its integrity check; left out", values["id"])
            continue
        except KeyShredded:  # its agency's keys were destroyed: the passage no longer exists for anyone
            continue
        values.update(text=fields.text, section=fields.section, terms=fields.terms, embedding=fields.embedding)
        if "title" in values and "document_id" in values:
            document_id = values["document_id"]
            if document_id not in titles:
                titles[document_id] = open_title(keyring, agency_id, document_id, values["title"], session)
            values["title"] = titles[document_id]
        out.append(values)
    return out


def vector_of(blob: bytes | None) -> np.ndarray | None:
    return np.frombuffer(blob, dtype=np.float32) if blob else None
