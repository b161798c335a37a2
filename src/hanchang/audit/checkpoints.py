"""Signed checkpoints of the audit chain, kept outside the database.

A hash chain proves that no record was changed, but not that the tail was not cut: delete the
last records, rewind the chain head, and what is left still verifies. A checkpoint states
"the chain had N records and record N's hash was H", signed with an Ed25519 key that lives in
HANCHANG_HOME (mode 0600), appended to `HANCHANG_HOME/audit/checkpoints.jsonl`. `verify` checks
each checkpoint's signature and that record N still exists with hash H — so a cut tail, a
rewound head or a truncated table is detected by anyone with the public key. Keep a copy of
the checkpoint file (and the public key) off the database host for full protection.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from hanchang.store.tables import AuditChainHead, AuditRecord


@dataclass(frozen=True)
class Checkpoint:
    last_id: int
    last_hash: str
    at: str

    def payload(self) -> bytes:
        return json.dumps({"last_id": self.last_id, "last_hash": self.last_hash, "at": self.at},
                          sort_keys=True, separators=(",", ":")).encode()


class CheckpointBook:
    def __init__(self, home: Path):
        self.folder = home / "audit"
        self.file = self.folder / "checkpoints.jsonl"
        self.private_path = self.folder / "checkpoint-signing.key"
        self.public_path = self.folder / "checkpoint-signing.pub"

    def _private_key(self) -> Ed25519PrivateKey:
        from cryptography.hazmat.primitives import serialization

        if self.private_path.is_file():
            return serialization.load_pem_private_key(self.private_path.read_bytes(), password=None)
        self.folder.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        descriptor = os.open(self.private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
        self.public_path.write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        return key

    def _public_key(self) -> Ed25519PublicKey | None:
        from cryptography.hazmat.primitives import serialization

        if not self.public_path.is_file():
            return None
        return serialization.load_pem_public_key(self.public_path.read_bytes())

    def write(self, session: Session) -> Checkpoint | None:
        """Sign the chain's current head and append it (nothing when the trail is empty or unchanged)."""
        head = session.get(AuditChainHead, 1)
        if head is None or head.last_id == 0:
            return None
        latest = self.latest()
        if latest is not None and latest.last_id == head.last_id:
            return None
        checkpoint = Checkpoint(head.last_id, head.last_hash, datetime.now(UTC).isoformat(timespec="seconds"))
        signature = base64.b64encode(self._private_key().sign(checkpoint.payload())).decode()
        with self.file.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({**json.loads(checkpoint.payload()), "signature": signature}) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return checkpoint

    def read(self) -> list[tuple[Checkpoint, str]]:
        if not self.file.is_file():
            return []
        out = []
        for line in self.file.read_text(encoding="utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                out.append((Checkpoint(item["last_id"], item["last_hash"], item["at"]), item["signature"]))
        return out

    def latest(self) -> Checkpoint | None:
        entries = self.read()
        return entries[-1][0] if entries else None

    def check(self, session: Session) -> str | None:
        """None when every checkpoint is genuine and still matched by the trail; else the problem."""
        entries = self.read()
        if not entries:
            return None
        public = self._public_key()
        if public is None:
            return f"checkpoints exist but the public key {self.public_path} is missing"
        for checkpoint, signature in entries:
            try:
                public.verify(base64.b64decode(signature), checkpoint.payload())
            except (InvalidSignature, ValueError):
                return f"checkpoint of {checkpoint.at} (record {checkpoint.last_id}) has a bad signature"
            stored = session.scalar(select(AuditRecord.record_hash).where(AuditRecord.id == checkpoint.last_id))
            if stored is None:
                return (f"record {checkpoint.last_id}, signed at {checkpoint.at}, is gone: "
                        "the trail was cut or truncated")
            if stored != checkpoint.last_hash:
                return f"record {checkpoint.last_id} no longer matches its checkpoint of {checkpoint.at}"
        return None
