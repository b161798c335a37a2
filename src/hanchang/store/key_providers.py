"""Where the key-encryption keys live: outside the database, one per agency.

A provider wraps and unwraps an agency's data keys with that agency's key-encryption key
(KEK) and never hands the KEK out. Shredding an agency destroys its KEK, so the data keys
wrapped in the database — and in every backup of it — can never be unwrapped again.

- `LocalKeyFile` (the default): a JSON file of random 256-bit KEKs, mode 0600, created by
  setup; AES-256-GCM (the `cryptography` library) wraps the data keys.
- `Pkcs11Provider`: the KEKs are AES keys inside an HSM (PKCS#11, e.g. SoftHSM2 or an agency's
  HSM), generated there as non-extractable; wrapping is AES-GCM performed by the token.

A cloud KMS or Vault is one more class with the same four methods.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import secrets
import stat
import threading
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hanchang.core.errors import HanchangError

KEY_BYTES = 32
NONCE_BYTES = 12
FILE_FORMAT = "hanchang-keyfile/1"


class KeysUnavailable(HanchangError):
    """The key provider cannot be reached or holds no usable key: S/C data waits, O goes on."""

    status, code = 503, "keys_unavailable"
    message_ko_default = "암호 키를 사용할 수 없어 민감·기밀 자료를 읽거나 쓸 수 없습니다. 관리자에게 알려 주세요."


class KeyShredded(KeysUnavailable):
    """The key was destroyed on purpose (`hanchang keys shred`): what it sealed is gone for good."""

    status, code = 410, "key_shredded"
    message_ko_default = "이 자료의 암호 키가 파기되어 더 이상 읽을 수 없습니다."


class KeyFileProblem(HanchangError):
    """The key file is missing, unreadable, too open or does not match the database: no start."""

    status, code = 500, "key_file_problem"


class KeyProvider(Protocol):
    name: str

    def wrap(self, agency: str, data_key: bytes) -> tuple[int, bytes]:
        """The data key wrapped by the agency's current KEK, and that KEK's version."""
        ...

    def unwrap(self, agency: str, kek_version: int, wrapped: bytes) -> bytes: ...

    def rotate(self, agency: str) -> int:
        """A new KEK for the agency (the old ones stay, to unwrap until re-wrapped); its version."""
        ...

    def destroy(self, agency: str) -> None:
        """Every KEK of the agency gone for good."""
        ...


def _aad(agency: str, version: int) -> bytes:
    return f"hanchang-data-key|{agency}|{version}".encode()


def seal_key(kek: bytes, agency: str, version: int, data_key: bytes) -> bytes:
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + AESGCM(kek).encrypt(nonce, data_key, _aad(agency, version))


def open_key(kek: bytes, agency: str, version: int, wrapped: bytes) -> bytes:
    return AESGCM(kek).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _aad(agency, version))


class LocalKeyFile:
    """KEKs in a local JSON file (mode 0600). Agencies get theirs when first needed, under a file
    lock, so processes sharing the file (workers, a shared mount) agree on them."""

    name = "file"

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._keks: dict[str, dict[int, bytes]] = {}
        self._read()

    @staticmethod
    def create(path: Path) -> LocalKeyFile:
        """A new, empty key file (refuses to overwrite one)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"format": FILE_FORMAT, "agencies": {}}, out)
        return LocalKeyFile(path)

    def _read(self) -> None:
        if not self.path.is_file():
            raise KeyFileProblem(
                f"암호 키 파일이 없습니다: {self.path}. 백업해 둔 키 파일을 이 위치에 되돌려 놓으세요.",
                f"the key file {self.path} is missing: restore it from your key backup (the database holds "
                "encrypted data that only its keys can read; nothing new is written without them)")
        mode = stat.S_IMODE(self.path.stat().st_mode)
        if mode & 0o077:
            raise KeyFileProblem(
                f"암호 키 파일의 권한이 너무 넓습니다({oct(mode)}): chmod 600 {self.path}",
                f"the key file {self.path} is readable by others (mode {oct(mode)}): run chmod 600 on it")
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
            if document.get("format") != FILE_FORMAT:
                raise ValueError("format")
            self._keks = {agency: {int(v): base64.b64decode(k) for v, k in versions.items()}
                          for agency, versions in document["agencies"].items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            raise KeyFileProblem(f"암호 키 파일을 읽을 수 없습니다: {self.path}",
                                 f"the key file {self.path} is not a Hanchang key file") from None

    @contextlib.contextmanager
    def _editing(self):
        """The file's current content, locked against other processes; written back atomically."""
        with self._lock, open(self.path, "r+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                self._read()
                yield self._keks
                document = {"format": FILE_FORMAT, "agencies": {
                    agency: {str(v): base64.b64encode(k).decode() for v, k in versions.items()}
                    for agency, versions in self._keks.items()}}
                partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
                fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as out:
                    json.dump(document, out)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(partial, self.path)
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _current(self, agency: str) -> tuple[int, bytes]:
        versions = self._keks.get(agency)
        if not versions:
            self._read()  # another process may have made it
            versions = self._keks.get(agency)
        if not versions:
            with self._editing() as keks:
                keks.setdefault(agency, {}).setdefault(1, secrets.token_bytes(KEY_BYTES))
            versions = self._keks[agency]
        version = max(versions)
        return version, versions[version]

    def wrap(self, agency: str, data_key: bytes) -> tuple[int, bytes]:
        version, kek = self._current(agency)
        return version, seal_key(kek, agency, version, data_key)

    def unwrap(self, agency: str, kek_version: int, wrapped: bytes) -> bytes:
        kek = self._keks.get(agency, {}).get(kek_version)
        if kek is None:
            self._read()
            kek = self._keks.get(agency, {}).get(kek_version)
        if kek is None:
            raise KeyShredded(message_en=f"no key-encryption key {kek_version} for agency {agency} in the key "
                                         "file (shredded, or the wrong key file)")
        try:
            return open_key(kek, agency, kek_version, wrapped)
        except InvalidTag:
            raise KeyFileProblem("암호 키 파일이 이 데이터베이스의 것이 아닙니다.",
                                 f"the key file does not open agency {agency}'s data keys (a different key "
                                 "file, or a damaged one)") from None

    def rotate(self, agency: str) -> int:
        with self._editing() as keks:
            versions = keks.setdefault(agency, {})
            version = max(versions, default=0) + 1
            versions[version] = secrets.token_bytes(KEY_BYTES)
        return version

    def destroy(self, agency: str) -> None:
        with self._editing() as keks:
            keks.pop(agency, None)


class Pkcs11Provider:
    """KEKs as AES keys inside a PKCS#11 token, labelled `hanchang-kek:<agency>:<version>`;
    generated on the token, never extractable; the token does the AES-GCM wrapping."""

    name = "pkcs11"

    def __init__(self, module: str, token_label: str, pin: str):
        self.module_path, self.token_label, self._pin = module, token_label, pin
        self._lock = threading.Lock()
        self._session = None

    def _open(self):
        import pkcs11  # python-pkcs11, an optional extra (`hsm`)

        if self._session is not None:
            return self._session
        try:
            library = pkcs11.lib(self.module_path)
            token = library.get_token(token_label=self.token_label)
            try:
                self._session = token.open(user_pin=self._pin, rw=True)
            except pkcs11.exceptions.UserAlreadyLoggedIn:  # PKCS#11 logs in per process, not per session
                self._session = token.open(rw=True)
        except Exception as exc:
            raise KeysUnavailable(message_en=f"the HSM (PKCS#11 token '{self.token_label}') cannot be reached: "
                                             f"{type(exc).__name__}") from None
        return self._session

    def _keys(self, agency: str) -> dict[int, object]:
        import pkcs11

        found = {}
        for key in self._open().get_objects({pkcs11.Attribute.CLASS: pkcs11.ObjectClass.SECRET_KEY}):
            label = key.label or ""
            prefix = f"hanchang-kek:{agency}:"
            if label.startswith(prefix) and label[len(prefix):].isdigit():
                found[int(label[len(prefix):])] = key
        return found

    def _generate(self, agency: str, version: int):
        import pkcs11

        return self._open().generate_key(pkcs11.KeyType.AES, 256, label=f"hanchang-kek:{agency}:{version}",
                                         store=True, template={pkcs11.Attribute.EXTRACTABLE: False,
                                                               pkcs11.Attribute.SENSITIVE: True})

    def _guarded(self, work):
        with self._lock:
            try:
                return work()
            except HanchangError:
                raise
            except Exception as exc:
                self._session = None  # reconnect next time
                raise KeysUnavailable(message_en=f"the HSM failed: {type(exc).__name__}") from None

    def wrap(self, agency: str, data_key: bytes) -> tuple[int, bytes]:
        import pkcs11
        from pkcs11.mechanisms import GCMParams

        def work():
            keys = self._keys(agency)
            if not keys:
                keys = {1: self._generate(agency, 1)}
            version = max(keys)
            nonce = secrets.token_bytes(NONCE_BYTES)
            sealed = keys[version].encrypt(data_key, mechanism=pkcs11.Mechanism.AES_GCM,
                                           mechanism_param=GCMParams(nonce, _aad(agency, version), 128))
            return version, nonce + sealed
        return self._guarded(work)

    def unwrap(self, agency: str, kek_version: int, wrapped: bytes) -> bytes:
        import pkcs11
        from pkcs11.mechanisms import GCMParams

        def work():
            key = self._keys(agency).get(kek_version)
            if key is None:
                raise KeyShredded(message_en=f"the HSM holds no key-encryption key {kek_version} for agency "
                                             f"{agency} (shredded, or another token)")
            try:
                return key.decrypt(wrapped[NONCE_BYTES:], mechanism=pkcs11.Mechanism.AES_GCM,
                                   mechanism_param=GCMParams(wrapped[:NONCE_BYTES], _aad(agency, kek_version), 128))
            except pkcs11.exceptions.PKCS11Error:
                raise KeyFileProblem("HSM의 키가 이 데이터베이스의 것이 아닙니다.",
                                     f"the HSM's key does not open agency {agency}'s data keys") from None
        return self._guarded(work)

    def rotate(self, agency: str) -> int:
        def work():
            version = max(self._keys(agency), default=0) + 1
            self._generate(agency, version)
            return version
        return self._guarded(work)

    def destroy(self, agency: str) -> None:
        def work():
            for key in self._keys(agency).values():
                key.destroy()
        self._guarded(work)
