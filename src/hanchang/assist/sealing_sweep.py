"""The sealing sweep: brings what is stored in line with the encryption policy, in the background.

It seals S/C values stored in clear (data from before encryption, a grade raised later) and
re-seals values sealed under an agency's older data key (after `hanchang keys rotate`). It works
in small batches, one transaction each, and keeps no state of its own: what still needs work is
read from the data every time (a value not sealed under its agency's active key), so a sweep
killed halfway resumes where it stopped. A value that fails its integrity check is left as it is
(audited by the keyring) and the sweep goes on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import exists, or_, select, true
from sqlalchemy.orm import Session

from hanchang.assist.stored_responses import sealed_where
from hanchang.core.grades import Grade
from hanchang.knowledge import collections as kc
from hanchang.knowledge.sealed_text import chunk_where, title_where
from hanchang.store import sealed_messages
from hanchang.store.db import Database
from hanchang.store.key_providers import KeysUnavailable
from hanchang.store.keyring import IntegrityFailure, Keyring, key_id_of, sealed_prefix
from hanchang.store.tables import (
    Agency,
    Chunk,
    Collection,
    Conversation,
    Document,
    EvalDataset,
    EvalOutputItem,
    EvalRun,
    Message,
    StoredResponse,
    User,
)

log = logging.getLogger("hanchang.keys")
BATCH = 200
SEALED_GRADES = (Grade.SENSITIVE.value, Grade.CLASSIFIED.value)


@dataclass(frozen=True)
class Target:
    """One kind of stored value: how to find rows of an agency that need work, which columns,
    and what each value is bound to."""

    name: str
    entity: type
    columns: tuple[str, ...]
    rows: Callable[[Keyring, int], object]  # (keyring, agency id) -> a select of `entity` needing work
    where: Callable[[object, str], str]


def _not_current(column, key_id: int):
    return or_(column.is_(None), ~column.like(f"{sealed_prefix(key_id)}%"))


def _graded(grade_column, keyring: Keyring):
    return true() if keyring.encrypt_open else grade_column.in_(SEALED_GRADES)


def _chunks(keyring: Keyring, agency_id: int):
    active = keyring.active_key_id(agency_id)
    return (select(Chunk).join(Document, Document.id == Chunk.document_id)
            .join(Collection, Collection.id == Chunk.collection_id)
            .where(Collection.agency_id == agency_id,
                   or_(_graded(Collection.grade, keyring), _graded(Document.grade, keyring)),
                   _not_current(Chunk.text, active)))


def _documents(keyring: Keyring, agency_id: int):
    active = keyring.active_key_id(agency_id)
    return (select(Document).join(Collection, Collection.id == Document.collection_id)
            .where(Collection.agency_id == agency_id,
                   or_(_graded(Collection.grade, keyring), _graded(Document.grade, keyring)),
                   _not_current(Document.title, active)))


def _messages(keyring: Keyring, agency_id: int):
    active = keyring.active_key_id(agency_id)
    return (select(Message).join(Conversation, Conversation.id == Message.conversation_id)
            .join(User, User.id == Conversation.user_id)
            .where(User.agency_id == agency_id, _graded(Message.grade, keyring), _not_current(Message.content, active)))


def _conversations(keyring: Keyring, agency_id: int):
    active = keyring.active_key_id(agency_id)
    graded = exists().where(Message.conversation_id == Conversation.id, _graded(Message.grade, keyring))
    return (select(Conversation).join(User, User.id == Conversation.user_id)
            .where(User.agency_id == agency_id, graded, _not_current(Conversation.title, active)))


def _responses(keyring: Keyring, agency_id: int):
    active = keyring.active_key_id(agency_id)
    return select(StoredResponse).where(StoredResponse.agency_id == agency_id,
                                        _graded(StoredResponse.grade, keyring),
                                        _not_current(StoredResponse.messages, active))


def _datasets(keyring: Keyring, agency_id: int):
    active = keyring.active_key_id(agency_id)
    return select(EvalDataset).where(EvalDataset.agency_id == agency_id, _graded(EvalDataset.grade, keyring),
                                     _not_current(EvalDataset.items, active))


def _runs(keyring: Keyring, agency_id: int):
    active = keyring.active_key_id(agency_id)
    return select(EvalRun).where(EvalRun.agency_id == agency_id, _graded(EvalRun.grade, keyring),
                                 _not_current(EvalRun.items, active))


def _outputs(keyring: Keyring, agency_id: int):
    active = keyring.active_key_id(agency_id)
    return (select(EvalOutputItem).join(EvalRun, EvalRun.id == EvalOutputItem.run_id)
            .where(EvalRun.agency_id == agency_id, _graded(EvalRun.grade, keyring),
                   _not_current(EvalOutputItem.sample, active)))


TARGETS = (
    Target("chunks", Chunk, ("text", "section", "terms", "embedding"), _chunks,
           lambda row, column: chunk_where(column, row.version_id, row.ordinal)),
    Target("documents", Document, ("title",), _documents, lambda row, _: title_where(row.id)),
    Target("messages", Message, ("content", "meta"), _messages,
           lambda row, column: sealed_messages.message_where(column, row)),
    Target("conversations", Conversation, ("title",), _conversations,
           lambda row, _: sealed_messages.title_where(row)),
    Target("stored_responses", StoredResponse, ("messages", "response"), _responses,
           lambda row, column: sealed_where(column, row.id)),
    Target("eval_datasets", EvalDataset, ("items",), _datasets,
           lambda row, _: f"eval_datasets.items:{row.name}:{row.version}"),
    Target("eval_runs", EvalRun, ("items",), _runs, lambda row, _: f"eval_runs.items:{row.id}"),
    Target("eval_output_items", EvalOutputItem, ("sample",), _outputs,
           lambda row, _: f"eval_output_items.sample:{row.run_id}:{row.position}"),
)


def _reseal(keyring: Keyring, session: Session, agency_id: int, where: str, value, active: int):
    """The value sealed under the active key (opened first if an older key sealed it)."""
    if value is None or key_id_of(value) == active:
        return value
    if isinstance(value, bytes):
        return keyring.seal_bytes(agency_id, where, keyring.open_bytes(agency_id, where, value, session), session)
    return keyring.seal(agency_id, where, keyring.open(agency_id, where, value, session), session)


def sweep_target(db: Database, keyring: Keyring, target: Target, agency_id: int,
                 stop: threading.Event | None = None) -> tuple[int, int]:
    """Seal or re-seal the target's rows of one agency; (done, failed)."""
    done, failed = 0, set()
    primary = target.entity.__mapper__.primary_key[0]
    while stop is None or not stop.is_set():
        with db.session() as session:
            query = target.rows(keyring, agency_id)
            if failed:
                query = query.where(primary.not_in(failed))
            rows = list(session.scalars(query.limit(BATCH)))
            if not rows:
                break
            active = keyring.active_key_id(agency_id, session)
            for row in rows:
                try:
                    sealed = {c: _reseal(keyring, session, agency_id, target.where(row, c), getattr(row, c), active)
                              for c in target.columns}
                except IntegrityFailure:
                    failed.add(getattr(row, primary.key))
                    continue
                for column, value in sealed.items():
                    setattr(row, column, value)
                done += 1
    return done, len(failed)


def _key_collections(db: Database, keyring: Keyring, agency_id: int) -> int:
    """Collections that hold S/C passages get keyed indexes (rebuilt at the next search)."""
    with db.session() as session:
        holds = exists().where(Document.collection_id == Collection.id, _graded(Document.grade, keyring))
        found = list(session.scalars(select(Collection).where(
            Collection.agency_id == agency_id, ~Collection.keyed_index,
            or_(_graded(Collection.grade, keyring), holds))))
        for collection in found:
            collection.keyed_index = True
            kc.touch(collection)
        return len(found)


def sweep(db: Database, keyring: Keyring, agency_id: int | None = None,
          stop: threading.Event | None = None) -> dict[str, int]:
    """One pass over every target of every agency (or one); counts of values sealed, by target."""
    keyring.refresh()  # another process may have rotated
    with db.session() as session:
        agencies = [agency_id] if agency_id is not None else list(session.scalars(select(Agency.id)))
    report: dict[str, int] = {}
    for agency in agencies:
        keyed = _key_collections(db, keyring, agency)
        if keyed:
            report["collections_keyed"] = report.get("collections_keyed", 0) + keyed
        for target in TARGETS:
            done, failed = sweep_target(db, keyring, target, agency, stop)
            if done:
                report[target.name] = report.get(target.name, 0) + done
            if failed:
                report["integrity_failures"] = report.get("integrity_failures", 0) + failed
    return report


class SealingSweeper:
    """The sweep every few minutes in a server, in a thread of its own."""

    def __init__(self, db: Database, keyring: Keyring, every_s: float):
        self.db, self.keyring, self.every_s = db, keyring, every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> SealingSweeper:
        self._thread = threading.Thread(target=self._loop, name="sealing-sweep", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                report = sweep(self.db, self.keyring, stop=self._stop)
                if report:
                    log.info("sealing sweep: %s", report)
            except KeysUnavailable as exc:
                log.warning("sealing sweep waits for the key provider: %s", exc.message_en)
            except Exception:
                log.exception("sealing sweep failed; trying again later")
            self._stop.wait(self.every_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
