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
    with platform.db.session() as session:
        accounts.create_user(session, "MOIS", "boss", Role.AGENCY_ADMIN)
        key = accounts.create_key(session, "MOIS", "boss").secret
    return platform, {"Authorization": f"Bearer {key}"}


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
