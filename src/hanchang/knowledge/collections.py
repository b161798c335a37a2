"""Collections and who may see them. Agency isolation lives here, in the queries.

A principal reads its own agency's collections plus those shared as common (공통); it never
learns that another agency's collection exists (not found, not forbidden). Agency admins
change their own agency's collections; platform admins change any.
"""

from __future__ import annotations

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session, object_session

from hanchang.core.errors import AlreadyExists, HanchangError, NotFound
from hanchang.core.grades import Grade
from hanchang.core.ids import in_range
from hanchang.core.permissions import SEE_EVERY_AGENCY, can, require
from hanchang.core.principal import Principal
from hanchang.store.tables import Agency, Collection, utcnow


class KnowledgeError(HanchangError):
    status, code = 400, "knowledge_error"


class CollectionNotFound(NotFound):
    code = "collection_not_found"


def readable(principal: Principal) -> Select[tuple[Collection]]:
    """The collections a principal may read: own agency's and common ones."""
    query = select(Collection)
    if can(principal, SEE_EVERY_AGENCY):
        return query
    return query.where(or_(Collection.agency_id == principal.agency_id, Collection.is_common.is_(True)))


def list_readable(session: Session, principal: Principal) -> list[Collection]:
    return list(session.scalars(readable(principal).order_by(Collection.is_common, Collection.name)))


def get_readable(session: Session, principal: Principal, ref: str | int) -> Collection:
    """A collection by id or name, if the principal may read it (own agency's name wins)."""
    query = readable(principal)
    if isinstance(ref, int) or str(ref).isdigit():
        found = session.scalar(query.where(Collection.id == int(ref))) if in_range(int(ref)) else None
    else:
        candidates = list(session.scalars(query.where(Collection.name == str(ref))))
        own = [c for c in candidates if c.agency_id == principal.agency_id]
        found = (own or candidates or [None])[0]
    if found is None:
        raise CollectionNotFound(f"지식베이스 '{ref}'을(를) 찾을 수 없습니다.",
                                 f"collection '{ref}' not found")
    return found


def require_writer(principal: Principal, collection: Collection) -> None:
    require(principal, "collections.change", collection)


def create(session: Session, agency_code: str, name: str, grade: Grade = Grade.OPEN,
           is_common: bool = False, description: str = "") -> Collection:
    name = name.strip()
    if not name or len(name) > 100 or "/" in name:
        raise KnowledgeError("지식베이스 이름은 1–100자이며 '/'를 쓸 수 없습니다.",
                             "collection name must be 1-100 characters without '/'")
    agency = session.scalar(select(Agency).where(Agency.code == agency_code))
    if agency is None:
        raise CollectionNotFound(f"기관 '{agency_code}'이(가) 없습니다.", f"agency '{agency_code}' not found")
    exists = session.scalar(select(Collection).where(Collection.agency_id == agency.id,
                                                     Collection.name == name))
    if exists is not None:
        raise AlreadyExists(f"지식베이스 '{name}'이(가) 이미 있습니다.", f"collection '{name}' exists")
    collection = Collection(agency_id=agency.id, name=name, grade=grade.value, is_common=is_common,
                            description=description, index_generation=0, keyed_index=_must_seal(session, grade))
    session.add(collection)
    session.flush()
    return collection


def find_for_operator(session: Session, name: str, agency_code: str | None) -> Collection | None:
    """CLI lookup: by name within an agency, or by a name unique across agencies."""
    query = select(Collection).join(Agency).where(Collection.name == name)
    if agency_code:
        query = query.where(Agency.code == agency_code)
    found = list(session.scalars(query))
    if len(found) > 1:
        codes = ", ".join(sorted(c.agency.code for c in found))
        raise KnowledgeError(f"'{name}' 지식베이스가 여러 기관({codes})에 있습니다. --agency를 지정하세요.",
                             f"collection '{name}' exists in {codes}; pass --agency")
    return found[0] if found else None


def _must_seal(session: Session | None, grade: Grade | str) -> bool:
    keyring = session.info.get("keyring") if session is not None else None
    return keyring.must_seal(grade) if keyring is not None else Grade.parse(grade) >= Grade.SENSITIVE


def touch(collection: Collection) -> None:
    """Mark the collection changed: its index is rebuilt at the next search. Incremented in SQL
    (not read-modify-write), so two transactions changing the collection at once get two
    generations; the attribute reloads at the next read."""
    collection.index_generation = Collection.index_generation + 1
    collection.updated_at = utcnow()
    session = object_session(collection)
    if not collection.keyed_index and _must_seal(session, collection.grade):
        collection.keyed_index = True  # raised to S/C: its index is rebuilt keyed, the sweep seals its text
    if session is not None:
        session.flush()  # the UPDATE now, so a read of the attribute reloads the new number
