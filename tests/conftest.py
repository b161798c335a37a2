"""Shared fixtures: real databases (SQLite, and PostgreSQL when HANCHANG_TEST_DATABASE_URL is
set), a real reference upstream over HTTP, and Hanchang itself served by uvicorn."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from hanchang_devtools.reference_upstream import ReferenceUpstream, UpstreamBehaviour
from hanchang_devtools.threaded_server import ThreadedServer, free_port
from sqlalchemy import create_engine, select, text

from hanchang.bootstrap import prepare_database
from hanchang.config import Settings, load_settings
from hanchang.core.principal import Role
from hanchang.server import create_app
from hanchang.store import accounts
from hanchang.store.db import Database, normalise_url
from hanchang.store.tables import UsageRecord

# The project's shared sample documents (seeds, HWP/HWPX samples), beside the checkout as in CI.
SHARED = Path(os.environ.get("HANCHANG_SHARED") or Path(__file__).resolve().parents[2] / "shared")


SHARED_PRESENT = (SHARED / "seeds").is_dir() and (SHARED / "samples").is_dir()
# The third-party HWP/HWPX fixtures and the seed documents stay in ../shared (their licences keep
# them out of this repository). A bare clone runs every other test and skips these, saying why; CI,
# where ../shared is always beside the checkout, fails instead of skipping.
needs_shared = pytest.mark.skipif(
    not SHARED_PRESENT and not os.environ.get("CI"),
    reason=f"needs the shared sample documents (../shared or HANCHANG_SHARED; not at {SHARED})")


def pytest_sessionstart(session):
    if not SHARED_PRESENT and os.environ.get("CI"):
        pytest.exit(f"CI runs with the shared sample documents beside the checkout; none at {SHARED}.",
                    returncode=4)

PG_URL = os.environ.get("HANCHANG_TEST_DATABASE_URL")
DATABASES = ["sqlite"] + (["postgresql"] if PG_URL else [])


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("HANCHANG_") and name != "HANCHANG_TEST_DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("HANCHANG_HOME", str(tmp_path / "home"))


@pytest.fixture(params=DATABASES)
def database_url(request, tmp_path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    schema = f"hc_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalise_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def write_config(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@dataclass
class Upstream:
    server: ThreadedServer
    behaviour: UpstreamBehaviour

    @property
    def base_url(self) -> str:
        return self.server.url + "/v1"


def start_upstream(**behaviour) -> Upstream:
    state = UpstreamBehaviour(**behaviour)
    server = ThreadedServer(ReferenceUpstream(state)).start()
    return Upstream(server, state)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    up = start_upstream()
    yield up
    up.server.stop()


@pytest.fixture
def upstreams():
    """Two reference upstreams whose answers say where they came from (internal, external)."""
    internal, external = start_upstream(prefix="내부: "), start_upstream(prefix="외부: ")
    yield internal, external
    internal.server.stop()
    external.server.stop()


@dataclass
class Platform:
    url: str
    key: str
    settings: Settings
    db: Database
    server: ThreadedServer

    @property
    def v1(self) -> str:
        return self.url + "/v1"

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    def new_key(self, agency: str = "MOIS", user: str = "kim", role: Role | None = None) -> str:
        with self.db.session() as session:
            return accounts.create_key(session, agency, user, role).secret

    def new_user_key(self, user: str, role: Role, agency: str = "MOIS") -> str:
        """A new user of `agency` with `role`, and an API key of theirs."""
        with self.db.session() as session:
            accounts.create_user(session, agency, user, role)
            return accounts.create_key(session, agency, user).secret

    def usage_rows(self, at_least: int = 1, timeout_s: float = 5.0) -> list[UsageRecord]:
        """Usage rows, waiting for the recorder's batch to land."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self.db.session() as session:
                rows = list(session.scalars(select(UsageRecord).order_by(UsageRecord.id)))
            if len(rows) >= at_least or time.monotonic() > deadline:
                return rows
            time.sleep(0.05)


def admins_of_two_agencies(platform: Platform) -> dict[str, str]:
    """A second agency (KOSIS) beside MOIS, an agency admin in each, and their API keys."""
    with platform.db.session() as session:
        accounts.create_agency(session, "KOSIS", "통계청")
        accounts.create_user(session, "MOIS", "admin-mois", Role.AGENCY_ADMIN)
        accounts.create_user(session, "KOSIS", "admin-kosis", Role.AGENCY_ADMIN)
        return {"mois": accounts.create_key(session, "MOIS", "admin-mois").secret,
                "kosis": accounts.create_key(session, "KOSIS", "admin-kosis").secret}


def default_models(upstream_url: str) -> list[dict]:
    return [
        {"name": "internal-a", "backend": "openai", "base_url": upstream_url, "zone": "internal",
         "max_grade": "C", "aliases": ["default"], "max_retries": 1},
    ]


def launch_platform(tmp_path: Path, database_url: str, config: dict) -> Platform:
    # The test APIs and MCP servers that connectors call listen on loopback, which a platform
    # reaches only when the allow list names it (tests of the policy itself set their own).
    config = {"connectors": {"allowed_hosts": ["127.0.0.1"]}, **config}
    cfg = write_config(tmp_path / "hanchang.yaml", config)
    settings = load_settings(cfg, database_url=database_url)
    db = prepare_database(settings)
    with db.session() as session:
        if not session.execute(text("select 1 from agencies where code='MOIS'")).first():
            accounts.create_agency(session, "MOIS", "행정안전부")
        try:
            accounts.get_user(session, "MOIS", "kim")
        except accounts.AccountError:
            accounts.create_user(session, "MOIS", "kim", Role.USER)
        key = accounts.create_key(session, "MOIS", "kim").secret
    server = ThreadedServer(create_app(settings, db))
    server.start()
    return Platform(server.url, key, settings, db, server)


@pytest.fixture
def platform_factory(tmp_path, database_url) -> Iterator:
    launched: list[Platform] = []

    def make(config: dict) -> Platform:
        platform = launch_platform(tmp_path, database_url, config)
        launched.append(platform)
        return platform

    yield make
    for platform in launched:
        platform.server.stop()
        platform.db.dispose()


@pytest.fixture
def platform(platform_factory, upstream) -> Platform:
    return platform_factory({"models": default_models(upstream.base_url)})


@pytest.fixture(scope="session")
def model_path(tmp_path_factory) -> Path:
    """Where the packaged embedded model is assembled (once per test session, on first use)."""
    from hanchang.gateway import local_model

    folder = tmp_path_factory.getbasetemp() / "models"
    folder.mkdir(exist_ok=True)
    return folder / local_model.FILENAME


@pytest.fixture
def local(platform_factory, model_path) -> Platform:
    """Hanchang with the embedded model for chat ('local') and embeddings ('local-embed'), each in
    its own supervised engine process."""
    return platform_factory({"models": [
        {"name": "local", "backend": "llamacpp", "path": str(model_path), "zone": "internal",
         "max_grade": "C", "context_window": 2048, "threads": 2},
        {"name": "local-embed", "backend": "llamacpp", "path": str(model_path), "zone": "internal",
         "max_grade": "C", "context_window": 512, "kind": "embedding", "threads": 2},
    ]})


@pytest.fixture
def booking():
    """The demo meeting-room booking API (the example connector's system) and its OpenAPI document."""
    from hanchang_devtools.demo_booking import create_booking_app

    app = create_booking_app()
    server = ThreadedServer(app).start()
    yield server, app.openapi()
    server.stop()


# -- the browser (Debian's Chromium driven by Playwright) ---------------------------------------
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def sign_in_window(page, url: str, agency: str, user: str, password: str) -> None:
    """Fill the window's sign-in form and send it."""
    page.goto(url + "/")
    page.fill("#agency", agency)
    page.fill("#user", user)
    page.fill("#password", password)
    page.click("button[type=submit]")


def serve(env: dict[str, str], *args: str, timeout_s: float = 90) -> tuple[subprocess.Popen, str]:
    """`hanchang serve [args]` as its own process on a free port, once it answers /healthz."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "hanchang", "serve", "--port", str(port), *args], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return server, url
        except httpx.HTTPError:
            pass
        assert server.poll() is None, server.stderr.read()[-2000:]
        assert time.monotonic() < deadline, f"hanchang serve {' '.join(args)} did not start"
        time.sleep(0.2)
