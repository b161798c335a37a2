"""Open zip-based documents (HWPX, DOCX, XLSX) with a guard against zip bombs."""

from __future__ import annotations

import zipfile
from pathlib import Path

from hanchang.knowledge.parsers.base import DamagedDocument, UnsupportedDocument

MAX_TOTAL_UNCOMPRESSED = 300 * 1024 * 1024
MAX_RATIO = 200  # uncompressed/compressed, for entries over 1 MiB
MAX_ENTRIES = 10_000


def open_zip(path: Path, name: str) -> zipfile.ZipFile:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DamagedDocument(f"'{name}'을(를) 열 수 없습니다. 파일이 손상되었을 수 있습니다.",
                              f"'{name}' is not a readable zip container") from exc
    infos = archive.infolist()
    total = sum(i.file_size for i in infos)
    suspicious = any(i.file_size > 1 << 20 and i.file_size > MAX_RATIO * max(1, i.compress_size)
                     for i in infos)
    if len(infos) > MAX_ENTRIES or total > MAX_TOTAL_UNCOMPRESSED or suspicious:
        archive.close()
        raise UnsupportedDocument(
            f"'{name}'은(는) 압축을 풀면 지나치게 커지는 파일이라 처리하지 않습니다.",
            f"'{name}' expands to {total:,} bytes: refused as a possible zip bomb",
        )
    return archive


def check_zip(path: Path, name: str) -> None:
    """Refuse a zip container that would expand too far, before any other library opens it."""
    open_zip(path, name).close()
