"""Document parsers, one module each, behind one registry declared here.

`parse(path)` sniffs the real type from the content (not only the extension) and calls the
matching parser. A plugin adds a format as a `ParserPlugin` under the entry-point group
`hanchang.parsers` (see `hanchang.plugins`); its extensions are matched by name.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from hanchang import plugins
from hanchang.knowledge.parsers.base import (
    Block,
    BlockKind,
    DamagedDocument,
    DocumentError,
    EncryptedDocument,
    ParsedDocument,
    ParserPlugin,
    UnsupportedDocument,
)
from hanchang.knowledge.parsers.hwp import parse_hwp
from hanchang.knowledge.parsers.hwpx import parse_hwpx
from hanchang.knowledge.parsers.ocr import is_image, parse_image
from hanchang.knowledge.parsers.office import parse_csv, parse_docx, parse_html, parse_pdf, parse_xlsx
from hanchang.knowledge.parsers.text import parse_markdown, parse_text

Parser = Callable[[Path, str | None], ParsedDocument]

PARSERS: dict[str, Parser] = {  # the built-in formats
    "hwp": parse_hwp, "hwpx": parse_hwpx, "pdf": parse_pdf, "docx": parse_docx,
    "xlsx": parse_xlsx, "csv": parse_csv, "html": parse_html, "markdown": parse_markdown,
    "text": parse_text, "image": parse_image,
}
_BY_EXTENSION = {".hwp": "hwp", ".hwpx": "hwpx", ".pdf": "pdf", ".docx": "docx", ".xlsx": "xlsx",
                 ".csv": "csv", ".tsv": "csv", ".html": "html", ".htm": "html", ".md": "markdown",
                 ".markdown": "markdown", ".txt": "text", ".text": "text", ".png": "image", ".jpg": "image",
                 ".jpeg": "image", ".tif": "image", ".tiff": "image"}


@dataclass(frozen=True)
class _Registry:
    parsers: dict[str, Parser]
    by_extension: dict[str, str]
    plugin_kinds: frozenset[str]


@cache
def _registry() -> _Registry:
    """Built-in formats plus those plugins add (`hanchang.parsers`), loaded on first use."""
    found = plugins.load_typed(plugins.PARSERS, ParserPlugin)
    parsers = plugins.merged(plugins.PARSERS, PARSERS, [(kind, plugin.parse) for kind, plugin in found])
    by_extension = dict(_BY_EXTENSION)
    for kind, plugin in found:
        for extension in plugin.extensions:
            if extension.lower() in by_extension:
                raise plugins.PluginError(f"plugin {kind} in {plugins.PARSERS} claims {extension}, already read "
                                          f"as {by_extension[extension.lower()]}")
            by_extension[extension.lower()] = kind
    return _Registry(parsers, by_extension, frozenset(kind for kind, _ in found))


def supported_extensions() -> frozenset[str]:
    return frozenset(_registry().by_extension)


__all__ = [
    "PARSERS",
    "Block",
    "BlockKind",
    "DamagedDocument",
    "DocumentError",
    "EncryptedDocument",
    "ParsedDocument",
    "ParserPlugin",
    "UnsupportedDocument",
    "detect_format",
    "parse",
]

log = logging.getLogger(__name__)


def detect_format(path: Path, name: str | None = None) -> str:
    """The format by content: OLE2 → hwp, zip → hwpx/docx/xlsx by its members, %PDF → pdf."""
    name = name or path.name
    with path.open("rb") as handle:
        head = handle.read(8)
    registry = _registry()
    by_name = registry.by_extension.get(Path(name).suffix.lower())
    if by_name in registry.plugin_kinds:  # a plugin's format: its parser checks the content
        return by_name
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        if by_name in (None, "hwp"):
            return "hwp"
        raise UnsupportedDocument(f"'{name}'은(는) 예전 MS Office 형식입니다. DOCX/XLSX로 저장해 주세요.",
                                  f"'{name}' is a legacy OLE2 Office file")
    if head.startswith(b"%PDF"):
        return "pdf"
    if is_image(head):  # a scan (PNG, JPEG, TIFF): read by OCR
        return "image"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
        except zipfile.BadZipFile as exc:
            raise DamagedDocument(f"'{name}'이(가) 손상되었습니다.", f"'{name}': bad zip") from exc
        if any(n.startswith("Contents/") for n in names):
            return "hwpx"
        if "word/document.xml" in names:
            return "docx"
        if "xl/workbook.xml" in names:
            return "xlsx"
        raise UnsupportedDocument(f"'{name}'은(는) 지원하지 않는 압축 파일입니다.",
                                  f"'{name}' is a zip of an unsupported kind")
    if by_name in ("hwp", "hwpx", "pdf", "docx", "xlsx", "image"):
        raise DamagedDocument(f"'{name}'의 내용이 {by_name.upper()} 형식이 아닙니다. 파일을 확인해 주세요.",
                              f"'{name}' does not contain {by_name}")
    if by_name is None:
        supported = ", ".join(sorted(registry.by_extension))
        raise UnsupportedDocument(f"'{name}'은(는) 지원하지 않는 형식입니다. 지원 형식: {supported}",
                                  f"unsupported file type: {name}")
    return by_name


def parse(path: Path, name: str | None = None) -> ParsedDocument:
    """Parse any supported document. Every failure is a DocumentError with a message for the user:
    a damaged file that trips a library (olefile, pypdf …) is reported, never raised as a crash."""
    name = name or path.name
    kind = detect_format(path, name)
    try:
        return _registry().parsers[kind](path, name)
    except DocumentError:
        raise
    except Exception as exc:
        log.warning("%s parser failed on %s: %r", kind, name, exc)
        raise DamagedDocument(
            f"'{name}'을(를) 읽을 수 없습니다. 파일이 손상되었거나 지원하지 않는 구조입니다. "
            "한글에서 다시 저장하거나 다른 형식(HWPX, PDF)으로 올려 주세요.",
            f"'{name}' could not be read ({kind} parser: {type(exc).__name__})") from exc


def page_count(path: Path) -> int | None:
    """Pages of a PDF or frames of an image, read cheaply (no rendering); None for other files or
    a file that cannot be opened (parsing then says why)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
        if head.startswith(b"%PDF"):
            import pypdfium2

            document = pypdfium2.PdfDocument(str(path))
            try:
                return len(document)
            finally:
                document.close()
        if is_image(head):
            from PIL import Image

            with Image.open(path) as image:
                return getattr(image, "n_frames", 1)
    except Exception:
        return None
    return None
