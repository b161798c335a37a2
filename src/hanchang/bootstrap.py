"""Bring a Hanchang home to a usable state: schema, embedded model, first agency and admin."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from hanchang.config import Settings
from hanchang.core.principal import Role
from hanchang.store import accounts, migrate
from hanchang.store.db import Database
from hanchang.store.tables import Agency, User

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
    return db


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
