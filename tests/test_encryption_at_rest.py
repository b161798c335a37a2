"""Encryption at rest: S/C text sealed per agency, found and served in clear, tamper-evident,
rotated and shredded; a missing or wrong key file stops the platform (store/keyring.py)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time

import httpx
import pytest
from sqlalchemy import MetaData, select, text

from conftest import admins_of_two_agencies
from hanchang.assist.sealing_sweep import sweep
from hanchang.bootstrap import prepare_database
from hanchang.config import load_settings
from hanchang.core.principal import Role
from hanchang.store import accounts
from hanchang.store.key_providers import KeyFileProblem
from hanchang.store.keyring import is_sealed, key_id_of
from hanchang.store.tables import AuditRecord, Chunk, Collection, Message, StoredResponse

SECRET = "제9조(출입통제) 보안구역 출입카드는 청색카드로 발급하며 번호는 7391번이다."
PHRASE = "청색카드"


@pytest.fixture
def kb(platform_factory, upstream):
    platform = platform_factory({"models": [
        {"name": "int", "backend": "openai", "base_url": upstream.base_url, "zone": "internal",
         "max_grade": "C", "context_window": 4096}]})
    platform.keys = admins_of_two_agencies(platform)
    platform.upstream = upstream
    return platform


def api(platform, method, path, key, **kwargs):
    return httpx.request(method, platform.url + path, headers=platform.headers(key), timeout=60, **kwargs)


def collection(platform, key, name, grade):
    response = api(platform, "POST", "/api/collections", key, json={"name": name, "grade": grade})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def upload(platform, key, cid, name, content: str, **data):
    response = api(platform, "POST", f"/api/collections/{cid}/documents", key, data=data,
                   files=[("files", (name, content.encode()))])
    assert response.status_code in (200, 202), response.text
    return response.json()


def clear_hits(db, needle: str) -> list[str]:
    """Every table and column of the database that holds `needle` in clear."""
    found = []
    meta = MetaData()
    meta.reflect(db.engine)
    with db.engine.connect() as conn:
        for table in meta.sorted_tables:
            for row in conn.execute(table.select()):
                for column, value in row._mapping.items():
                    if isinstance(value, bytes):
                        value = value.decode("utf-8", "ignore")
                    if isinstance(value, str) and needle in value:
                        found.append(f"{table.name}.{column}")
    return found


def files_holding(root, needle: str) -> list[str]:
    data = needle.encode()
    return [str(p) for p in root.rglob("*") if p.is_file() and data in p.read_bytes()]


def test_sensitive_text_is_sealed_at_rest_found_and_served_in_clear(kb):
    key = kb.keys["mois"]
    secret, public = collection(kb, key, "보안규정", "S"), collection(kb, key, "공개규정", "O")
    upload(kb, key, secret, "출입통제.txt", SECRET)
    upload(kb, key, public, "안내.txt", "공개 안내문: 민원실은 오전 9시에 문을 엽니다.")
    # Search matches the sealed text exactly as before (keyed term hashes), and returns it in clear.
    hits = api(kb, "GET", "/api/search", key, params={"q": "출입카드 색깔", "collection": secret}).json()["results"]
    assert hits and PHRASE in hits[0]["text"] and hits[0]["title"]
    documents = api(kb, "GET", f"/api/collections/{secret}/documents", key).json()["data"]
    assert documents[0]["title"] == "출입통제"
    # A grounded answer: the model (recorded upstream) reads the passage in clear; the
    # conversation about it is S and sealed at rest.
    kb.upstream.behaviour.reply = "청색카드입니다 [1]."
    answer = api(kb, "POST", "/v1/chat/completions", key, json={
        "model": "int", "collections": [secret], "messages": [{"role": "user", "content": "출입카드는 무슨 색?"}]})
    assert answer.status_code == 200, answer.text
    assert PHRASE in str(kb.upstream.behaviour.received[-1]["messages"])
    stored = api(kb, "POST", "/v1/responses", key, json={"model": "int", "input": f"다음을 요약: {SECRET}",
                                                         "data_grade": "S", "store": True})
    assert stored.status_code == 200, stored.text
    assert api(kb, "GET", f"/v1/responses/{stored.json()['id']}", key).status_code == 200
    with kb.db.session() as session:
        chunks = session.scalars(select(Chunk).where(Chunk.collection_id == secret)).all()
        assert chunks and all(is_sealed(c.text) and is_sealed(c.terms) for c in chunks)
        assert all(not is_sealed(c.text) for c in session.scalars(select(Chunk).where(Chunk.collection_id == public)))
        assert session.get(Collection, secret).keyed_index and not session.get(Collection, public).keyed_index
        sealed_responses = session.scalars(select(StoredResponse).where(StoredResponse.grade == "S")).all()
        assert sealed_responses and all(is_sealed(r.messages) and is_sealed(r.response) for r in sealed_responses)
    assert clear_hits(kb.db, PHRASE) == []
    # The title is sealed too; the upload's file name stays a clear label (source, audit), like a path.
    assert set(clear_hits(kb.db, "출입통제")) <= {"documents.source_key", "audit_records.detail"}
    # The embedded index (SQLite) on disk holds no clear term of it either.
    assert files_holding(kb.settings.home / "indexes", PHRASE) == []
    assert files_holding(kb.settings.home / "indexes", "출입카드") == []


def test_a_moved_or_tampered_ciphertext_fails_alone_and_is_audited(kb):
    key = kb.keys["mois"]
    cid = collection(kb, key, "보안규정", "S")
    upload(kb, key, cid, "출입통제.txt", SECRET)
    upload(kb, key, cid, "복무.txt", "제3조(복무) 출근 시각은 오전 9시이며 청색카드를 패용한다.")
    with kb.db.session() as session:
        first, second = session.scalars(select(Chunk).where(Chunk.collection_id == cid).order_by(Chunk.id)).all()[:2]
        second.text = first.text  # a valid ciphertext, moved to another row
    hits = api(kb, "GET", "/api/search", key, params={"q": "청색카드", "collection": cid})
    assert hits.status_code == 200
    texts = [h["text"] for h in hits.json()["results"]]
    assert len(texts) == 1 and "7391" in texts[0]  # the moved one is left out, the rest is served
    opened = api(kb, "GET", f"/api/chunks/{second.id}", key)
    assert opened.status_code == 500 and opened.json()["error"]["code"] == "integrity_failure"
    with kb.db.session() as session:
        audited = session.scalars(select(AuditRecord).where(AuditRecord.action == "keys.integrity_failure")).all()
    assert audited and f"chunks.text:{second.version_id}:{second.ordinal}" in audited[-1].detail
    assert PHRASE not in audited[-1].detail


def test_another_agencys_key_does_not_open_its_ciphertext(kb):
    mois, kosis = kb.keys["mois"], kb.keys["kosis"]
    a, b = collection(kb, mois, "보안", "S"), collection(kb, kosis, "보안", "S")
    upload(kb, mois, a, "출입통제.txt", SECRET)
    upload(kb, kosis, b, "통계.txt", "제1조 통계 원자료는 청색카드 소지자만 열람한다.")
    with kb.db.session() as session:
        theirs = session.scalars(select(Chunk).where(Chunk.collection_id == a)).first()
        ours = session.scalars(select(Chunk).where(Chunk.collection_id == b)).first()
        assert key_id_of(theirs.text) != key_id_of(ours.text)  # a data key per agency
        ours.text = theirs.text
    hits = api(kb, "GET", "/api/search", kosis, params={"q": "청색카드", "collection": b}).json()["results"]
    assert all("7391" not in h["text"] for h in hits)


def test_rotation_rewraps_at_once_and_the_sweep_reseals_resumably(kb, tmp_path):
    key = kb.keys["mois"]
    cid = collection(kb, key, "보안규정", "S")
    upload(kb, key, cid, "출입통제.txt", SECRET)
    keyring = kb.db.keyring
    with kb.db.session() as session:
        mois = session.scalar(text("select id from agencies where code='MOIS'"))
    before = keyring.active_key_id(mois)
    done = keyring.rotate(mois)
    assert done["data_key"] != before and done["rewrapped"] >= 2
    with kb.db.session() as session:
        old = [c.text for c in session.scalars(select(Chunk).where(Chunk.collection_id == cid))]
    assert {key_id_of(t) for t in old} == {before}  # data moves in the background, not at once
    # A sweep stopped after its first batch resumes where it left off.
    from hanchang.assist import sealing_sweep
    sealing_sweep.BATCH, saved = 1, sealing_sweep.BATCH
    try:
        target = next(t for t in sealing_sweep.TARGETS if t.name == "chunks")
        stop = _StopAfter(1)
        first, _ = sealing_sweep.sweep_target(kb.db, keyring, target, mois, stop)
        assert first == 1
    finally:
        sealing_sweep.BATCH = saved
    report = sweep(kb.db, keyring, mois)
    assert report.get("chunks", 0) == len(old) - 1
    with kb.db.session() as session:
        now = [c.text for c in session.scalars(select(Chunk).where(Chunk.collection_id == cid))]
    assert {key_id_of(t) for t in now} == {done["data_key"]}
    hits = api(kb, "GET", "/api/search", key, params={"q": "출입카드", "collection": cid}).json()["results"]
    assert hits and PHRASE in hits[0]["text"]
    # A fresh process (nothing cached) opens everything with the re-wrapped keys.
    keyring.forget_cache()
    assert api(kb, "GET", "/api/search", key, params={"q": "출입카드", "collection": cid}).json()["results"]


class _StopAfter:
    """A stop event that is set after `n` checks (the sweep checks it once per batch)."""

    def __init__(self, n: int):
        self.n = n

    def is_set(self) -> bool:
        self.n -= 1
        return self.n < 0


def test_clear_data_from_before_encryption_is_sealed_by_the_sweep(kb):
    key = kb.keys["mois"]
    cid = collection(kb, key, "규정", "O")
    upload(kb, key, cid, "출입통제.txt", SECRET)
    with kb.db.session() as session:  # as a database migrated from before this round would hold it
        session.get(Collection, cid).grade = "S"
    assert clear_hits(kb.db, PHRASE)
    report = sweep(kb.db, kb.db.keyring)
    assert report["chunks"] >= 1 and report["documents"] == 1 and report["collections_keyed"] == 1
    assert clear_hits(kb.db, PHRASE) == []
    hits = api(kb, "GET", "/api/search", key, params={"q": "출입카드", "collection": cid}).json()["results"]
    assert hits and PHRASE in hits[0]["text"]


def test_shredding_an_agency_makes_its_data_unreadable_and_is_audited(kb):
    mois, kosis = kb.keys["mois"], kb.keys["kosis"]
    a, b = collection(kb, mois, "보안", "S"), collection(kb, kosis, "보안", "S")
    upload(kb, mois, a, "출입통제.txt", SECRET)
    upload(kb, kosis, b, "통계.txt", "제1조 통계 원자료는 청색카드 소지자만 열람한다.")
    with kb.db.session() as session:
        mois_id = session.scalar(text("select id from agencies where code='MOIS'"))
    from hanchang.cli.common import audit_admin
    kb.db.keyring.shred(mois_id, record=lambda session: audit_admin(session, "keys.shred", "MOIS"))
    kb.db.keyring.forget_cache()
    keyfile = kb.settings.resolved_key_file.read_text()
    assert '"MOIS"' not in keyfile and '"KOSIS"' in keyfile  # its KEKs gone: backups' wrapped keys stay shut
    assert api(kb, "GET", "/api/search", mois, params={"q": "청색카드", "collection": a}).json()["results"] == []
    others = api(kb, "GET", "/api/search", kosis, params={"q": "청색카드", "collection": b}).json()["results"]
    assert others and "통계" in others[0]["text"]  # another agency's data is untouched
    with kb.db.session() as session:
        assert session.scalars(select(AuditRecord).where(AuditRecord.action == "keys.shred")).all()


def test_conversations_about_sensitive_sources_are_sealed_and_searchable(kb):
    key = kb.keys["mois"]
    cid = collection(kb, key, "보안규정", "S")
    upload(kb, key, cid, "출입통제.txt", SECRET)
    kb.upstream.behaviour.reply = "출입카드는 청색카드입니다 [1]."
    with kb.db.session() as session:
        accounts.create_user(session, "MOIS", "lee", Role.USER, "pw-lee-123456")
    client = httpx.Client(base_url=kb.url, timeout=60)
    assert client.post("/auth/login", data={"agency": "MOIS", "user": "lee", "password": "pw-lee-123456"}
                       ).status_code == 303
    csrf = {"X-CSRF-Token": re.search(r'name="csrf-token" content="([^"]+)"', client.get("/").text).group(1)}
    conversation = client.post("/api/conversations", headers=csrf).json()["id"]
    # The window's turn: a grounded question on an S collection.
    turn = client.post(f"/api/conversations/{conversation}/messages", headers=csrf,
                       json={"content": "청색카드 번호는?", "collections": [cid], "model": "int"})
    assert turn.status_code == 200 and "event: done" in turn.text, turn.text
    with kb.db.session() as session:
        messages = session.scalars(select(Message).where(Message.conversation_id == conversation)).all()
    assert messages and all(is_sealed(m.content) for m in messages if m.grade == "S")
    assert clear_hits(kb.db, PHRASE) == []
    shown = client.get(f"/api/conversations/{conversation}/messages").json()["data"]
    assert any(PHRASE in m["content"] for m in shown)
    listed = client.get("/api/conversations", params={"q": PHRASE}).json()["data"]
    assert [c["id"] for c in listed] == [conversation] and PHRASE in listed[0]["title"]


def test_sensitive_uploads_never_touch_the_disk_in_clear(kb):
    key = kb.keys["mois"]
    cid = collection(kb, key, "보안규정", "S")
    queued = upload(kb, key, cid, "출입통제.txt", SECRET, background="true")
    assert "job" in queued
    job = queued["job"]["id"]
    held = kb.settings.home / "ingest-jobs"
    for _ in range(600):
        state = api(kb, "GET", f"/api/ingest-jobs/{job}", key).json()
        assert files_holding(held, PHRASE) == []  # while it waits and while it is read
        if state["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.1)
    assert state["status"] == "succeeded", state
    hits = api(kb, "GET", "/api/search", key, params={"q": "출입카드", "collection": cid}).json()["results"]
    assert hits and PHRASE in hits[0]["text"]


def test_a_missing_or_wrong_key_file_stops_the_platform(tmp_path, database_url):
    settings = load_settings(None, home=tmp_path / "home", database_url=database_url)
    db = prepare_database(settings)
    path = settings.resolved_key_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    db.dispose()
    saved = path.read_bytes()
    path.unlink()
    with pytest.raises(KeyFileProblem, match="missing"):
        prepare_database(settings)
    # Another platform's key file (the same agencies, other keys) does not open these keys.
    other = load_settings(None, home=tmp_path / "other")
    prepare_database(other).dispose()
    path.write_bytes(other.resolved_key_file.read_bytes())
    os.chmod(path, 0o600)
    with pytest.raises(KeyFileProblem, match="does not open"):
        prepare_database(settings)
    path.write_bytes(saved)
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileProblem, match="readable by others"):
        prepare_database(settings)
    os.chmod(path, 0o600)
    prepare_database(settings).dispose()
    # The command line says so and exits non-zero, without a traceback.
    path.unlink()
    env = {**os.environ, "HANCHANG_HOME": str(settings.home), "HANCHANG_DATABASE_URL": database_url}
    done = subprocess.run([sys.executable, "-m", "hanchang", "keys", "status"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "key file" in done.stderr and "Traceback" not in done.stderr


SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"
needs_softhsm = pytest.mark.skipif(not os.path.exists(SOFTHSM), reason="Debian's softhsm2 is not installed")


@pytest.fixture(scope="session")
def _softhsm_token(tmp_path_factory):
    """One SoftHSM2 token 'hanchang' (PIN 1234) for the session: a PKCS#11 library reads its
    configuration once per process, so every test here shares it."""
    folder = tmp_path_factory.mktemp("softhsm")
    (folder / "tokens").mkdir()
    conf = folder / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {folder / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "hanchang", "--pin", "1234",
                    "--so-pin", "5678"], check=True, capture_output=True, env=env)
    return conf


@pytest.fixture
def softhsm(_softhsm_token, monkeypatch):
    monkeypatch.setenv("SOFTHSM2_CONF", str(_softhsm_token))
    monkeypatch.setenv("HANCHANG_PKCS11_PIN", "1234")
    return SOFTHSM


@needs_softhsm
def test_keys_in_an_hsm_seal_rotate_and_shred(platform_factory, upstream, softhsm):
    platform = platform_factory({"models": [
        {"name": "int", "backend": "openai", "base_url": upstream.base_url, "zone": "internal", "max_grade": "C"}],
        "encryption": {"provider": "pkcs11", "pkcs11_module": softhsm}})
    with platform.db.session() as session:
        accounts.create_user(session, "MOIS", "admin-mois", Role.AGENCY_ADMIN)
        key = accounts.create_key(session, "MOIS", "admin-mois").secret
    assert not platform.settings.resolved_key_file.exists()  # no key file: the HSM holds the KEKs
    cid = collection(platform, key, "보안규정", "S")
    upload(platform, key, cid, "출입통제.txt", SECRET)
    assert clear_hits(platform.db, PHRASE) == []
    keyring = platform.db.keyring
    with platform.db.session() as session:
        mois = session.scalar(text("select id from agencies where code='MOIS'"))
    keyring.rotate(mois)
    sweep(platform.db, keyring, mois)
    keyring.forget_cache()  # everything unwrapped again by the token
    hits = api(platform, "GET", "/api/search", key, params={"q": "출입카드", "collection": cid}).json()["results"]
    assert hits and PHRASE in hits[0]["text"]
    keyring.shred(mois)
    keyring.forget_cache()
    assert api(platform, "GET", "/api/search", key, params={"q": "청색카드", "collection": cid}).json()["results"] == []


@needs_softhsm
def test_an_unreachable_hsm_stops_sensitive_requests_only(platform_factory, upstream, softhsm):
    platform = platform_factory({"models": [  # a token the HSM does not have: unreachable
        {"name": "int", "backend": "openai", "base_url": upstream.base_url, "zone": "internal", "max_grade": "C"}],
        "encryption": {"provider": "pkcs11", "pkcs11_module": softhsm, "pkcs11_token": "absent"}})
    with platform.db.session() as session:
        accounts.create_user(session, "MOIS", "admin-mois", Role.AGENCY_ADMIN)
        key = accounts.create_key(session, "MOIS", "admin-mois").secret
    public = collection(platform, key, "공개", "O")
    upload(platform, key, public, "안내.txt", "민원실은 오전 9시에 문을 엽니다.")
    assert api(platform, "GET", "/api/search", key, params={"q": "민원실", "collection": public}).json()["results"]
    secret = collection(platform, key, "보안규정", "S")
    refused = api(platform, "POST", f"/api/collections/{secret}/documents", key,
                  files=[("files", ("출입통제.txt", SECRET.encode()))])
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "keys_unavailable"
    assert clear_hits(platform.db, PHRASE) == []  # nothing written in clear meanwhile
