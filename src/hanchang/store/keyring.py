"""Envelope encryption at rest: per-agency data keys, wrapped by a KEK outside the database.

Every S or C value stored (a chunk's text, a document's title, a message, a stored response,
an uploaded original, an eval set) is sealed with AES-256-GCM under its agency's active data
key. The associated data names the agency, the table and column, and the row, so a ciphertext
copied to another row or agency fails to open. A sealed value holds the key id, the nonce and
the ciphertext with its tag: text as `hc1:<key id>:<base64>`, bytes as `hc1:` and the raw bytes.
A value without the prefix is clear (O data, or data from before encryption that the background
sweep has not reached yet).

The inverted indexes of sealed collections hold keyed hashes of terms (HMAC-SHA256 with the
agency's index key), not the terms: retrieval matches exactly as before, and a copy of the index
reveals no word.

Data keys live in `agency_keys`, wrapped by the provider (`key_providers.py`); unwrapped ones
are cached in memory. `rotate` makes a new KEK and a new data key (old data keys are re-wrapped
at once; data moves to the new key in the background sweep); `shred` destroys the KEK and every
data key of an agency.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import struct
import threading
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, event, select

from hanchang.core.errors import HanchangError
from hanchang.core.grades import Grade
from hanchang.store.key_providers import KEY_BYTES, NONCE_BYTES, KeyProvider, KeyShredded, KeysUnavailable
from hanchang.store.tables import Agency, AgencyKey, utcnow

TEXT_PREFIX = "hc1:"
BYTES_PREFIX = b"hc1:"
_HEADER = struct.Struct(">I")  # the data key's id
DATA, INDEX = "data", "index"
TERM_HASH_BYTES = 12  # 96 bits: no collision among any collection's terms in practice


class IntegrityFailure(HanchangError):
    """A stored ciphertext does not open: tampered with, or moved from another row or agency."""

    status, code = 500, "integrity_failure"
    message_ko_default = "저장된 자료의 무결성 검사에 실패했습니다(변조 의심). 관리자에게 알려 주세요."


def is_sealed(value: str | bytes | None) -> bool:
    if value is None:
        return False
    return value.startswith(BYTES_PREFIX if isinstance(value, bytes) else TEXT_PREFIX)


def key_id_of(value: str | bytes) -> int | None:
    """The data key a sealed value was sealed with (None for clear values)."""
    if not is_sealed(value):
        return None
    if isinstance(value, bytes):
        return _HEADER.unpack_from(value, len(BYTES_PREFIX))[0]
    head = value[len(TEXT_PREFIX):].split(":", 1)[0]
    return int(head) if head.isdigit() else None


def sealed_prefix(key_id: int) -> str:
    """How every text sealed with this key starts (the sweep finds what another key sealed)."""
    return f"{TEXT_PREFIX}{key_id}:"


class TermHasher:
    """Terms -> keyed hashes (deterministic for one agency, meaningless without its key)."""

    def __init__(self, key: bytes):
        self._key = key

    def __call__(self, terms: list[str]) -> list[str]:
        cache: dict[str, str] = {}
        out = []
        for term in terms:
            hashed = cache.get(term)
            if hashed is None:
                digest = hmac.new(self._key, term.encode(), hashlib.sha256).digest()[:TERM_HASH_BYTES]
                hashed = cache[term] = base64.b64encode(digest).decode()
            out.append(hashed)
        return out


class Keyring:
    def __init__(self, db, provider: KeyProvider, *, encrypt_open: bool = False):
        self.db = db
        self.provider = provider
        self.encrypt_open = encrypt_open
        self._keys: dict[int, tuple[int, bytes]] = {}  # key id -> (agency id, key)
        self._ciphers: dict[int, AESGCM] = {}  # key id -> its cipher, made once
        # agency, purpose -> the active key's id. Kept until this process rotates or `refresh`es: a
        # rotation by another process is seen by the sweep, which re-seals what an older key sealed.
        self._active: dict[tuple[int, str], int] = {}
        self._codes: dict[int, str] = {}
        self._lock = threading.RLock()
        # Told of every ciphertext that fails to open (the platform audits it).
        self.on_integrity_failure: Callable[[int, str], None] | None = None

    # -- policy ---------------------------------------------------------------------------
    def must_seal(self, grade: str | Grade) -> bool:
        return self.encrypt_open or Grade.parse(grade) >= Grade.SENSITIVE

    # -- keys -----------------------------------------------------------------------------
    def agency_code(self, agency_id: int) -> str | None:
        return self._codes.get(agency_id)

    def _code(self, session, agency_id: int) -> str:
        code = self._codes.get(agency_id)
        if code is None:
            code = session.scalar(select(Agency.code).where(Agency.id == agency_id))
            if code is None:
                raise KeysUnavailable(message_en=f"agency {agency_id} does not exist")
            self._codes[agency_id] = code
        return code

    def _unwrap(self, session, row: AgencyKey) -> bytes:
        key = self.provider.unwrap(self._code(session, row.agency_id), row.kek_version, row.wrapped)
        self._keys[row.id] = (row.agency_id, key)
        return key

    @contextlib.contextmanager
    def _session(self, session):
        """The caller's session (inside its transaction: SQLite allows one writer), or a new one."""
        if session is not None:
            yield session
        else:
            with self.db.session() as own:
                yield own

    def _active_key(self, agency_id: int, purpose: str, session=None) -> tuple[int, bytes]:
        with self._lock:
            key_id = self._active.get((agency_id, purpose))
            if key_id is not None and key_id in self._keys:
                return key_id, self._keys[key_id][1]
            with self._session(session) as s:
                row = s.scalar(select(AgencyKey).where(
                    AgencyKey.agency_id == agency_id, AgencyKey.purpose == purpose, AgencyKey.state == "active")
                    .order_by(AgencyKey.id).limit(1))
                if row is None:
                    row = self._new_key(s, agency_id, purpose)
                key = self._keys[row.id][1] if row.id in self._keys else self._unwrap(s, row)
                self._active[(agency_id, purpose)] = row.id
                return row.id, key

    def _new_key(self, session, agency_id: int, purpose: str) -> AgencyKey:
        key = secrets.token_bytes(KEY_BYTES)
        version, wrapped = self.provider.wrap(self._code(session, agency_id), key)
        row = AgencyKey(agency_id=agency_id, purpose=purpose, kek_version=version, wrapped=wrapped, state="active")
        session.add(row)
        session.flush()
        self._keys[row.id] = (agency_id, key)
        # Made inside a caller's transaction: if that rolls back, so does the key; forget it then.
        event.listen(session, "after_soft_rollback", lambda *_: self.forget(row.id), once=True)
        return row

    def _key(self, key_id: int, session=None) -> tuple[int, bytes]:
        found = self._keys.get(key_id)  # the common case, without the lock
        if found is not None:
            return found
        with self._lock:
            found = self._keys.get(key_id)
            if found is not None:
                return found
            with self._session(session) as s:
                row = s.get(AgencyKey, key_id)
                if row is None:
                    raise KeyShredded(message_en=f"data key {key_id} no longer exists (shredded)")
                self._unwrap(s, row)
            return self._keys[key_id]

    def forget(self, key_id: int) -> None:
        with self._lock:
            self._keys.pop(key_id, None)
            self._ciphers.pop(key_id, None)
            for slot, known in list(self._active.items()):
                if known == key_id:
                    del self._active[slot]

    def active_key_id(self, agency_id: int, session=None) -> int:
        return self._active_key(agency_id, DATA, session)[0]

    def term_hasher(self, agency_id: int, session=None) -> TermHasher:
        return TermHasher(self._active_key(agency_id, INDEX, session)[1])

    def prepare(self, agency_ids: list[int]) -> None:
        """At start (no other transaction open): every agency's keys made if missing and
        unwrapped — a missing or wrong key file fails here, not on a user's request."""
        with self.db.session() as session:
            for agency_id in agency_ids:
                for purpose in (DATA, INDEX):
                    self._active_key(agency_id, purpose, session)

    def refresh(self) -> None:
        """Forget which keys are active (another process may have rotated)."""
        with self._lock:
            self._active.clear()

    # -- sealing --------------------------------------------------------------------------
    @staticmethod
    def _aad(agency_id: int, where: str) -> bytes:
        return f"hanchang|{agency_id}|{where}".encode()

    def seal_raw(self, agency_id: int, where: str, plain: bytes, session=None) -> bytes:
        key_id, key = self._active_key(agency_id, DATA, session)
        nonce = secrets.token_bytes(NONCE_BYTES)
        return _HEADER.pack(key_id) + nonce + self._cipher(key_id, key).encrypt(nonce, plain,
                                                                                self._aad(agency_id, where))

    def _cipher(self, key_id: int, key: bytes) -> AESGCM:
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            cipher = self._ciphers[key_id] = AESGCM(key)
        return cipher

    def open_raw(self, agency_id: int, where: str, raw: bytes, session=None) -> bytes:
        try:
            (key_id,) = _HEADER.unpack_from(raw)
        except struct.error:
            raw, key_id = b"", 0
        owner, key = self._key(key_id, session) if key_id else (None, b"")
        start = _HEADER.size
        try:
            if owner != agency_id or len(raw) < start + NONCE_BYTES + 16:
                raise InvalidTag
            return self._cipher(key_id, key).decrypt(raw[start:start + NONCE_BYTES], raw[start + NONCE_BYTES:],
                                                     self._aad(agency_id, where))
        except InvalidTag:
            if self.on_integrity_failure is not None:
                self.on_integrity_failure(agency_id, where)
            raise IntegrityFailure(message_en=f"stored value {where} failed its integrity check "
                                              "(tampered with, or moved from another row)") from None

    def seal(self, agency_id: int, where: str, plain: str, session=None) -> str:
        raw = self.seal_raw(agency_id, where, plain.encode(), session)
        return f"{sealed_prefix(_HEADER.unpack_from(raw)[0])}{base64.urlsafe_b64encode(raw).decode()}"

    def open(self, agency_id: int, where: str, value: str, session=None) -> str:
        if not is_sealed(value):
            return value
        try:
            raw = base64.urlsafe_b64decode(value[len(TEXT_PREFIX):].split(":", 1)[1].encode())
        except (ValueError, IndexError):
            raw = b""
        return self.open_raw(agency_id, where, raw, session).decode()

    def seal_bytes(self, agency_id: int, where: str, plain: bytes, session=None) -> bytes:
        return BYTES_PREFIX + self.seal_raw(agency_id, where, plain, session)

    def open_bytes(self, agency_id: int, where: str, value: bytes, session=None) -> bytes:
        if not is_sealed(value):
            return value
        return self.open_raw(agency_id, where, value[len(BYTES_PREFIX):], session)

    def seal_if(self, grade: str | Grade, agency_id: int, where: str, plain: str, session=None) -> str:
        return self.seal(agency_id, where, plain, session) if self.must_seal(grade) else plain

    # -- administration -------------------------------------------------------------------
    def rotate(self, agency_id: int, record: Callable[[object, dict], None] | None = None) -> dict:
        """A new KEK; every data key of the agency re-wrapped with it now; a new active data key
        (the sweep re-seals the data under it). `record(session, done)` writes the audit record
        in the same transaction as the re-wrapped keys. Returns what was done."""
        with self._lock, self.db.session() as session:
            code = self._code(session, agency_id)
            rows = session.scalars(select(AgencyKey).where(AgencyKey.agency_id == agency_id)).all()
            keys = {row.id: self._keys[row.id][1] if row.id in self._keys else self._unwrap(session, row)
                    for row in rows}
            version = self.provider.rotate(code)
            for row in rows:
                row.kek_version, row.wrapped = self.provider.wrap(code, keys[row.id])
                if row.purpose == DATA and row.state == "active":
                    row.state, row.retired_at = "retired", utcnow()
            new = self._new_key(session, agency_id, DATA)
            done = {"agency": code, "kek_version": version, "rewrapped": len(rows), "data_key": new.id}
            if record is not None:
                record(session, done)
            self._active[(agency_id, DATA)] = new.id
            return done

    def shred(self, agency_id: int, record: Callable[[object], None] | None = None) -> dict:
        """Destroy the agency's KEKs and data keys: its sealed data never opens again. `record`
        writes the audit record in the same transaction as the keys' deletion; the provider's
        KEKs are destroyed before it commits (if that fails, nothing is deleted)."""
        with self._lock, self.db.session() as session:
            code = self._code(session, agency_id)
            gone = session.execute(delete(AgencyKey).where(AgencyKey.agency_id == agency_id)).rowcount
            if record is not None:
                record(session)
            session.flush()
            self.provider.destroy(code)
        for key_id in [k for k, (owner, _) in self._keys.items() if owner == agency_id]:
            self._keys.pop(key_id, None)
            self._ciphers.pop(key_id, None)
        for purpose in (DATA, INDEX):
            self._active.pop((agency_id, purpose), None)
        return {"agency": code, "keys_destroyed": gone}

    def forget_cache(self) -> None:
        with self._lock:
            self._keys.clear()
            self._ciphers.clear()
            self._active.clear()


def must_seal(session, grade: str | Grade) -> bool:
    """Whether a value of this grade is sealed. Without a keyring (a bare database in a tool or
    test) O data is written as it is and S/C data refused: never written unsealed."""
    keyring = session.info.get("keyring")
    if keyring is not None:
        return keyring.must_seal(grade)
    if Grade.parse(grade) >= Grade.SENSITIVE:
        keyring_of(session)  # raises: no key provider configured
    return False


def keyring_of(session) -> Keyring:
    """The keyring of the database this session belongs to."""
    keyring = session.info.get("keyring")
    if keyring is None:
        raise KeysUnavailable(message_en="this database has no keyring (no key provider configured)")
    return keyring


def seal_json(session, grade: str | Grade, agency_id: int, where: str, value) -> str:
    """`value` as JSON, sealed when `grade` asks for it."""
    plain = json.dumps(value, ensure_ascii=False)
    return keyring_of(session).seal(agency_id, where, plain, session) if must_seal(session, grade) else plain


def open_json(session, agency_id: int, where: str, stored: str):
    """A JSON column's value, opened first when sealed (raises IntegrityFailure if tampered)."""
    if is_sealed(stored):
        stored = keyring_of(session).open(agency_id, where, stored, session)
    return json.loads(stored)
