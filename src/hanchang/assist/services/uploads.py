"""Files sent to a service (`{"filename", "content_base64"}`): decoded once, parsed by our parsers."""

from __future__ import annotations

import base64
import binascii
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hanchang.assist.services.base import ServiceInputError
from hanchang.knowledge.parsers import DocumentError, ParsedDocument, parse

MAX_UPLOAD_BYTES = 50 * 1024 * 1024


@contextmanager
def uploaded_file(upload: Any) -> Iterator[tuple[Path, str]]:
    """The upload as a temporary file (removed afterwards) and its name."""
    if not isinstance(upload, dict) or not upload.get("filename") or not upload.get("content_base64"):
        raise ServiceInputError('파일은 {"filename": 이름, "content_base64": 내용} 형식으로 보내 주세요.')
    name = str(upload["filename"])
    try:
        content = base64.b64decode(upload["content_base64"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ServiceInputError(f"'{name}'의 내용이 올바른 base64가 아닙니다.") from exc
    if len(content) > MAX_UPLOAD_BYTES:
        limit_mb = MAX_UPLOAD_BYTES // 1024 // 1024
        raise ServiceInputError(f"'{name}'이(가) 너무 큽니다. {limit_mb} MB 이하로 올려 주세요.")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "upload"
        path.write_bytes(content)
        yield path, name


def parse_upload(path: Path, name: str) -> ParsedDocument:
    try:
        return parse(path, name)
    except DocumentError as exc:
        raise ServiceInputError(exc.message_ko) from None


def document_text(upload: Any) -> tuple[str, str]:
    """The text of an uploaded HWP/HWPX/PDF/DOCX/… document, and its name."""
    with uploaded_file(upload) as (path, name):
        parsed = parse_upload(path, name)
    if not parsed.text.strip():
        raise ServiceInputError(f"'{name}'에서 글자를 찾지 못했습니다. 스캔 문서라면 글자 인식(OCR) 후 올려 주세요.")
    return parsed.text, name
