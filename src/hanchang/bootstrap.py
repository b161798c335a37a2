"""Bring a Hanchang home to a usable state: schema, embedded model, first agency and admin."""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from hanchang.config import Settings
from hanchang.core.principal import Role
from hanchang.store import accounts, migrate
from hanchang.store.db import Database
from hanchang.store.key_providers import KeyFileProblem, KeysUnavailable, LocalKeyFile, Pkcs11Provider
from hanchang.store.keyring import Keyring
from hanchang.store.tables import Agency, AgencyKey, User

log = logging.getLogger("hanchang.keys")

FIRST_ADMIN = "admin"


@dataclass
class FirstRun:
    agency_code: str
    user_name: str
    password: str
    api_key: str
    credentials_file: Path


def prepare_database(settings: Settings) -> Database:
    """Create HANCHANG_HOME, migrate the schema, and add agencies named in the config."""
    settings.home.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    migrate.upgrade(db.engine)
    with db.session() as session:
        for agency in settings.agencies:
            if session.scalar(select(Agency).where(Agency.code == agency.code)) is None:
                accounts.create_agency(session, agency.code, agency.name)
    open_keyring(settings, db)
    return db


def key_provider(settings: Settings, db: Database):
    """The configured key provider. A missing key file is created only for a database that holds
    no wrapped keys yet (a new platform); otherwise the platform refuses to start."""
    config = settings.encryption
    if config.provider == "pkcs11":
        return Pkcs11Provider(config.pkcs11_module, config.pkcs11_token, os.environ.get(config.pkcs11_pin_env, ""))
    path = settings.resolved_key_file
    if not path.exists():
        with db.session() as session:
            wrapped = session.scalar(select(func.count()).select_from(AgencyKey))
        if wrapped:
            raise KeyFileProblem(
                f"암호 키 파일이 없습니다: {path}. 이 데이터베이스의 암호화된 자료는 그 키 파일로만 읽을 수 있습니다. "
                "백업해 둔 키 파일을 되돌려 놓거나 encryption.key_file에 위치를 적으세요.",
                f"the key file {path} is missing, and this database holds data keys wrapped by it: restore the "
                "key file from your key backup or point encryption.key_file at it; nothing starts without it")
        log.warning("created a new key file at %s: back it up apart from the database", path)
        return LocalKeyFile.create(path)
    return LocalKeyFile(path)


def open_keyring(settings: Settings, db: Database) -> Keyring:
    """Attach the keyring to the database and check it opens every agency's keys: a wrong or
    missing key file stops the platform here. An unreachable HSM does not: O data is served and
    S/C requests answer 503 until it is back."""
    if db.keyring is not None:
        return db.keyring
    keyring = Keyring(db, key_provider(settings, db), encrypt_open=settings.encryption.encrypt_open)
    with db.session() as session:
        agency_ids = list(session.scalars(select(Agency.id).order_by(Agency.id)))
    try:
        keyring.prepare(agency_ids)
    except KeysUnavailable as exc:
        log.error("the key provider is unavailable; S/C data cannot be read or written until it is back: %s",
                  exc.message_en)
    db.keyring = keyring
    return keyring


def create_first_admin(settings: Settings, db: Database) -> FirstRun | None:
    """On an empty platform, create the first platform admin with a password and a key."""
    with db.session() as session:
        if session.scalar(select(func.count()).select_from(User)):
            return None
        code = settings.agencies[0].code if settings.agencies else None
        if code is None:
            return None
        password = secrets.token_urlsafe(12)
        accounts.create_user(session, code, FIRST_ADMIN, Role.PLATFORM_ADMIN, password)
        issued = accounts.create_key(session, code, FIRST_ADMIN, label="first-run")
    path = settings.home / "initial-credentials.txt"
    path.write_text(
        f"agency={code}\nuser={FIRST_ADMIN}\npassword={password}\napi_key={issued.secret}\n",
        encoding="utf-8",
    )
    os.chmod(path, 0o600)
    return FirstRun(code, FIRST_ADMIN, password, issued.secret, path)
