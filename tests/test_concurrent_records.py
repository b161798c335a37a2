"""Concurrent actions: every committed action has its audit record, none fails with a 500, and the
chain verifies — on SQLite and on PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import func, select

from hanchang.audit import trail
from hanchang.core.principal import Role
from hanchang.store import accounts
from hanchang.store.tables import AuditRecord, Document


@pytest.fixture
def admin(platform):
    return platform, platform.headers(platform.new_user_key("boss", Role.AGENCY_ADMIN))


def records(platform, action: str) -> int:
    with platform.db.session() as session:
        return session.scalar(select(func.count()).select_from(AuditRecord).where(AuditRecord.action == action))


def test_concurrent_uploads_each_keep_their_record(admin):
    platform, headers = admin
    collection = httpx.post(platform.url + "/api/collections", headers=headers, timeout=30,
                            json={"name": "동시", "grade": "O"}).json()["id"]

    def upload(n: int) -> int:
        document = (f"문서{n}.txt", f"동시 업로드 문서 {n}번의 본문입니다.".encode())
        return httpx.post(f"{platform.url}/api/collections/{collection}/documents", headers=headers, timeout=120,
                          files=[("files", document)]).status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(upload, range(30)))
    assert statuses == [200] * 30
    with platform.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Document)) == 30
        assert trail.verify(session).ok
    assert records(platform, "documents.upload") == 30


def test_concurrent_grade_changes_and_template_writes_never_fail(admin):
    platform, headers = admin
    collection = httpx.post(platform.url + "/api/collections", headers=headers, timeout=30,
                            json={"name": "등급", "grade": "O"}).json()["id"]
    template = {"name_ko": "주간 보고", "sections": ["추진 현황", "향후 계획"], "instructions": "간결하게"}

    def change(n: int) -> int:
        return httpx.patch(f"{platform.url}/api/collections/{collection}", headers=headers, timeout=60,
                           json={"grade": "SO"[n % 2]}).status_code

    def put(_: int) -> int:
        return httpx.put(platform.url + "/api/services/draft/templates/weekly", headers=headers, timeout=60,
                         json=template).status_code

    with ThreadPoolExecutor(16) as pool:
        grades = list(pool.map(change, range(40)))
        puts = list(pool.map(put, range(40)))
    assert grades == [200] * 40 and puts == [200] * 40
    assert records(platform, "templates.save") == 40
    with platform.db.session() as session:
        assert trail.verify(session).ok


def test_two_server_processes_lose_no_record(database_url, tmp_path, upstream):
    """Two `hanchang serve` processes on one database (as behind a load balancer): uploads spread
    over both all land with their records, and the chain verifies."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    from hanchang_devtools.threaded_server import free_port

    from conftest import write_config
    from hanchang.bootstrap import prepare_database
    from hanchang.config import load_settings

    config = write_config(tmp_path / "two.yaml", {"models": [
        {"name": "internal-a", "backend": "openai", "base_url": upstream.base_url, "zone": "internal",
         "max_grade": "C"}]})
    db = prepare_database(load_settings(config, database_url=database_url))
    with db.session() as session:
        accounts.create_agency(session, "MOIS", "행정안전부")
        accounts.create_user(session, "MOIS", "boss", Role.AGENCY_ADMIN)
        key = accounts.create_key(session, "MOIS", "boss").secret
    env = {**os.environ, "HANCHANG_DATABASE_URL": database_url, "HANCHANG_CONFIG": str(config)}
    ports = [free_port(), free_port()]
    hanchang = str(Path(sys.executable).with_name("hanchang"))
    servers = [subprocess.Popen([hanchang, "serve", "--port", str(port)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for port in ports]
    headers = {"Authorization": f"Bearer {key}"}
    try:
        for port in ports:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        collection = httpx.post(f"http://127.0.0.1:{ports[0]}/api/collections", headers=headers, timeout=30,
                                json={"name": "둘", "grade": "O"}).json()["id"]

        def upload(n: int) -> int:
            document = (f"문서{n}.txt", f"두 프로세스 업로드 문서 {n}번.".encode())
            return httpx.post(f"http://127.0.0.1:{ports[n % 2]}/api/collections/{collection}/documents",
                              headers=headers, timeout=120, files=[("files", document)]).status_code

        with ThreadPoolExecutor(12) as pool:
            assert list(pool.map(upload, range(30))) == [200] * 30
    finally:
        for server in servers:
            server.terminate()
            server.wait(30)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Document)) == 30
        assert session.scalar(select(func.count()).select_from(AuditRecord)
                              .where(AuditRecord.action == "documents.upload")) == 30
        assert trail.verify(session).ok
    db.dispose()
