"""Uploaded originals of S/C documents: never on disk in clear.

An upload for an S or C collection is received into memory (a Linux memfd, which the parsers
open by path like any file); a synchronous ingest reads it there. One that waits for a
background job is written under HANCHANG_HOME sealed (AES-256-GCM, its agency's data key,
bound to the collection and the upload's name) and opened back into memory when the job reads
it. OCR gets page images on standard input, never through a file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from hanchang.store.keyring import Keyring

MAGIC = b"\x00hanchang-sealed-upload/1\x00"
SUFFIX = ".sealed"


def in_memory(name: str) -> tuple[int, Path]:
    """A file that lives in memory only: its descriptor and a path the parsers can open."""
    fd = os.memfd_create(f"upload-{name}"[:200], os.MFD_CLOEXEC)
    return fd, Path(f"/proc/{os.getpid()}/fd/{fd}")


def _where(collection_id: int, key: str) -> str:
    return f"uploads:{collection_id}:{key}"


def seal_to(target: Path, clear: Path, keyring: Keyring, agency_id: int, collection_id: int, key: str) -> Path:
    """Write `clear` (a memory file) sealed to `target` + `.sealed`; the sealed file's path."""
    sealed = target.with_name(target.name + SUFFIX)
    fd = os.open(sealed, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(MAGIC + keyring.seal_bytes(agency_id, _where(collection_id, key), clear.read_bytes()))
    return sealed


def is_sealed_file(path: Path) -> bool:
    return path.name.endswith(SUFFIX)


@contextlib.contextmanager
def opened(path: Path, keyring: Keyring, agency_id: int, collection_id: int, key: str) -> Iterator[Path]:
    """The sealed file opened into memory for as long as the block runs (a clear file as it is)."""
    if not is_sealed_file(path):
        yield path
        return
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        raise ValueError(f"{path.name} is not a sealed upload")
    fd, memory = in_memory(path.name)
    try:
        os.write(fd, keyring.open_bytes(agency_id, _where(collection_id, key), data[len(MAGIC):]))
        yield memory
    finally:
        os.close(fd)
