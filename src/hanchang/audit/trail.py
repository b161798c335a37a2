"""The append-only, hash-chained audit trail.

Each record carries the hash of the one before it; its own hash covers every field, its id
and that link. Appends lock the chain head, so records form one line even with several
workers on PostgreSQL. `verify` walks the chain and names the first record that does not fit.
No prompt text is kept unless an agency asks for it, and then only encrypted (Fernet).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from hanchang.core.principal import Principal
from hanchang.store.tables import AuditChainHead, AuditRecord, utcnow

GENESIS = "0" * 64
HASHED_FIELDS = (
    "id", "created_at", "category", "action", "request_id", "user_id", "user_name", "agency_code",
    "role", "model_requested", "model_used", "declared_grade", "effective_grade", "grade_reason",
    "pii_mode", "pii_counts", "source_ids", "tokens_in", "tokens_out", "latency_ms", "status",
    "outcome", "detail", "prompt_encrypted", "prev_hash",
)


@dataclass
class AuditEntry:
    """What happened; turned into an AuditRecord (with id and hashes) when appended."""

    category: str
    action: str
    outcome: str
    status: int = 200
    request_id: str | None = None
    user_id: int | None = None
    user_name: str | None = None
    agency_code: str | None = None
    role: str | None = None
    model_requested: str | None = None
    model_used: str | None = None
    declared_grade: str | None = None
    effective_grade: str | None = None
    grade_reason: str | None = None
    pii_mode: str | None = None
    pii_counts: dict[str, int] = field(default_factory=dict)
    source_ids: list[str] = field(default_factory=list)
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: int = 0
    detail: dict[str, Any] = field(default_factory=dict)
    prompt_encrypted: str | None = None
    created_at: datetime = field(default_factory=utcnow)


def _canonical_time(value: datetime) -> str:
    # SQLite hands back naive UTC, PostgreSQL aware: hash one form of both.
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds")


def record_hash(values: dict[str, Any]) -> str:
    canonical = {name: values[name] for name in HASHED_FIELDS}
    canonical["created_at"] = _canonical_time(canonical["created_at"])
    payload = json.dumps(canonical, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _as_values(entry: AuditEntry) -> dict[str, Any]:
    values = {k: v for k, v in vars(entry).items()}
    values["pii_counts"] = json.dumps(entry.pii_counts, sort_keys=True, ensure_ascii=False)
    values["source_ids"] = json.dumps(entry.source_ids, ensure_ascii=False)
    values["detail"] = json.dumps(entry.detail, sort_keys=True, ensure_ascii=False)
    # Stored at microsecond precision in UTC on every database.
    values["created_at"] = entry.created_at.astimezone(UTC)
    return values


def append(session: Session, entries: list[AuditEntry]) -> list[dict[str, Any]]:
    """Append entries to the chain inside the caller's transaction (one multi-row insert)."""
    if not entries:
        return []
    head = session.scalars(select(AuditChainHead).where(AuditChainHead.id == 1)
                           .with_for_update()).one()
    rows = []
    last_id, last_hash = head.last_id, head.last_hash
    for entry in entries:
        values = _as_values(entry)
        values["id"] = last_id + 1
        values["prev_hash"] = last_hash
        values["record_hash"] = record_hash(values)
        rows.append(values)
        last_id, last_hash = values["id"], values["record_hash"]
    session.execute(insert(AuditRecord.__table__), rows)
    head.last_id, head.last_hash = last_id, last_hash
    session.flush()
    return rows


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    broken_id: int | None = None
    problem: str = ""


def verify(session: Session, batch: int = 2000) -> VerifyResult:
    """Walk the chain from the start; stop at the first record that does not fit."""
    expected_prev, expected_id, checked = GENESIS, 1, 0
    last_id = 0
    while True:
        rows = session.scalars(select(AuditRecord).where(AuditRecord.id > last_id)
                               .order_by(AuditRecord.id).limit(batch)).all()
        if not rows:
            break
        for row in rows:
            values = {name: getattr(row, name) for name in HASHED_FIELDS}
            if row.id != expected_id:
                return VerifyResult(False, checked, expected_id,
                                    f"record {expected_id} is missing (next is {row.id})")
            if row.prev_hash != expected_prev:
                return VerifyResult(False, checked, row.id,
                                    "its link to the previous record does not match")
            if record_hash(values) != row.record_hash:
                return VerifyResult(False, checked, row.id, "its content does not match its hash")
            expected_prev, expected_id, checked = row.record_hash, row.id + 1, checked + 1
            last_id = row.id
    head = session.get(AuditChainHead, 1)
    if head is not None and (head.last_id != last_id or head.last_hash != expected_prev):
        return VerifyResult(False, checked, last_id + 1,
                            f"the chain head expects {head.last_id} records; the trail ends at {last_id}")
    return VerifyResult(True, checked)


EXPORT_FIELDS = [n for n in HASHED_FIELDS if n != "prompt_encrypted"] + ["record_hash"]


def export_rows(session: Session, since: datetime, agency: str | None) -> Iterator[dict[str, Any]]:
    query = select(AuditRecord).where(AuditRecord.created_at >= since).order_by(AuditRecord.id)
    if agency:
        query = query.where(AuditRecord.agency_code == agency)
    for row in session.scalars(query).yield_per(1000):
        out = {name: getattr(row, name) for name in EXPORT_FIELDS}
        out["created_at"] = _canonical_time(row.created_at) + "Z"
        for name in ("pii_counts", "source_ids", "detail"):
            out[name] = json.loads(out[name])
        out["prompt_stored"] = row.prompt_encrypted is not None
        yield out


def to_jsonl(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(row, ensure_ascii=False) + "\n"


def to_csv(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*EXPORT_FIELDS, "prompt_stored"])
    writer.writeheader()
    yield buffer.getvalue()
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow({k: json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v
                         for k, v in row.items()})
        yield buffer.getvalue()


class PromptSealer:
    """Encrypts prompt text for the agencies that chose to keep it."""

    def __init__(self, agencies: list[str], key: str | None):
        self._agencies = set(agencies)
        self._fernet = Fernet(key.encode()) if key and agencies else None

    def seal(self, agency_code: str | None, messages: list[dict[str, Any]]) -> str | None:
        if self._fernet is None or agency_code not in self._agencies:
            return None
        return self._fernet.encrypt(json.dumps(messages, ensure_ascii=False).encode()).decode()

    def open(self, token: str) -> list[dict[str, Any]]:
        if self._fernet is None:
            raise ValueError("no audit key configured")
        return json.loads(self._fernet.decrypt(token.encode()))


def admin_entry(action: str, actor: str, agency_code: str | None, detail: dict[str, Any],
                outcome: str = "ok") -> AuditEntry:
    """An admin action (by the CLI operator or an admin through the API)."""
    return AuditEntry(category="admin", action=action, outcome=outcome, user_name=actor,
                      agency_code=agency_code, detail=detail)


def integrity_failure_entry(agency_code: str | None, where: str) -> AuditEntry:
    """A stored ciphertext that failed to open (tampered, or moved): where, never what."""
    return AuditEntry(category="security", action="keys.integrity_failure", outcome="failed", status=500,
                      user_name="system",
                      agency_code=agency_code, detail={"where": where})


def record_by(session: Session, principal: Principal, action: str, detail: dict[str, Any],
              category: str = "admin") -> None:
    """Append a record of something a signed-in principal did (admin action, API call …)."""
    entry = admin_entry(action, principal.user_name, principal.agency_code, detail)
    entry.category, entry.user_id, entry.role = category, principal.user_id, principal.role.value
    append(session, [entry])
