"""The audit trail: one chained record per call and admin action; edits and gaps are caught."""

from __future__ import annotations

import csv
import io
import json

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from conftest import default_models
from hanchang.audit import trail
from hanchang.cli import app
from hanchang.store.tables import AuditRecord

RRN = "800101-1234560"


@pytest.fixture
def cli(database_url, monkeypatch):
    monkeypatch.setenv("HANCHANG_DATABASE_URL", database_url)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def ask(platform, content="안녕하세요", **extra):
    return httpx.post(platform.v1 + "/chat/completions", headers=platform.headers(), timeout=10,
                      json={"model": "internal-a", "messages": [{"role": "user", "content": content}],
                            **extra})


def records(platform, at_least: int) -> list[AuditRecord]:
    platform.usage_rows(at_least=at_least)  # same batch as the audit records
    with platform.db.session() as session:
        return list(session.scalars(select(AuditRecord).order_by(AuditRecord.id)))


def tamper(platform, statement: str) -> None:
    """Change the trail the way someone with database rights could: triggers off first."""
    with platform.db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE audit_records DISABLE TRIGGER audit_records_append_only"))
            conn.execute(text(statement))
            conn.execute(text("ALTER TABLE audit_records ENABLE TRIGGER audit_records_append_only"))
        else:
            conn.execute(text("DROP TRIGGER audit_records_no_update"))
            conn.execute(text("DROP TRIGGER audit_records_no_delete"))
            conn.execute(text(statement))


def test_each_call_is_recorded_without_prompt_text(platform):
    ask(platform, f"주민번호 {RRN} 민원", data_grade="S")
    ask(platform, "x", model="nope")
    first, second = records(platform, 2)
    assert (first.category, first.action, first.outcome) == ("ai", "chat.completions", "ok")
    assert first.status == 200
    assert (first.declared_grade, first.effective_grade, first.model_used) == ("S", "S", "internal-a")
    assert json.loads(first.pii_counts) == {"RRN": 1} and first.pii_mode == "allow"
    assert first.agency_code == "MOIS" and first.user_name == "kim" and first.tokens_out > 0
    assert first.prompt_encrypted is None and RRN not in json.dumps(
        {c.name: str(getattr(first, c.name)) for c in AuditRecord.__table__.columns}, ensure_ascii=False)
    assert (second.outcome, second.status) == ("model_not_found", 404)
    assert second.prev_hash == first.record_hash


def test_verify_passes_then_names_an_edited_record(platform, cli):
    for i in range(4):
        ask(platform, f"질문 {i}")
    rows = records(platform, 4)
    result = cli("audit", "verify")
    assert result.exit_code == 0 and f"{len(rows)} records verified" in result.stdout
    tamper(platform, f"UPDATE audit_records SET tokens_out = tokens_out + 1 WHERE id = {rows[2].id}")
    result = cli("audit", "verify")
    assert result.exit_code == 1
    assert f"at record {rows[2].id}" in result.stderr and "does not match its hash" in result.stderr


def test_verify_names_a_deleted_record(platform, cli):
    for i in range(3):
        ask(platform, f"질문 {i}")
    rows = records(platform, 3)
    tamper(platform, f"DELETE FROM audit_records WHERE id = {rows[1].id}")
    result = cli("audit", "verify")
    assert result.exit_code == 1 and f"record {rows[1].id} is missing" in result.stderr


def test_records_cannot_be_edited_through_the_database_either(platform):
    ask(platform)
    (row,) = records(platform, 1)
    with pytest.raises(DBAPIError, match="append-only"), platform.db.engine.begin() as conn:
        conn.execute(text(f"UPDATE audit_records SET outcome = 'x' WHERE id = {row.id}"))


def test_admin_actions_are_recorded(cli):
    assert cli("agencies", "create", "KOSIS", "--name", "통계청").exit_code == 0
    assert cli("users", "create", "--user", "lee", "--agency", "KOSIS").exit_code == 0
    assert cli("keys", "create", "--user", "lee", "--agency", "KOSIS").exit_code == 0
    assert cli("keys", "revoke", "1").exit_code == 0
    exported = cli("audit", "export", "--since", "1h")
    actions = [json.loads(line)["action"] for line in exported.stdout.splitlines()]
    assert actions == ["agencies.create", "users.create", "keys.create", "keys.revoke"]
    assert cli("audit", "verify").exit_code == 0


def test_export_filters_by_agency_in_jsonl_and_csv(platform, cli, tmp_path):
    ask(platform)
    records(platform, 1)
    cli("agencies", "create", "KOSIS", "--name", "통계청")
    mois = [json.loads(x) for x in cli("audit", "export", "--agency", "MOIS").stdout.splitlines()]
    assert [r["agency_code"] for r in mois] == ["MOIS"] and mois[0]["prompt_stored"] is False
    out = tmp_path / "audit.csv"
    assert cli("audit", "export", "--format", "csv", "--out", str(out)).exit_code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert {r["agency_code"] for r in rows} == {"MOIS", "KOSIS"}
    assert all(len(r["record_hash"]) == 64 for r in rows)


def test_prompts_are_stored_encrypted_only_for_agencies_that_ask(platform_factory, upstream,
                                                                    monkeypatch):
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("HANCHANG_AUDIT_KEY", key)
    platform = platform_factory({"models": default_models(upstream.base_url),
                                 "audit": {"store_prompts_for": ["MOIS"]}})
    ask(platform, f"주민번호 {RRN}")
    (row,) = records(platform, 1)
    assert row.prompt_encrypted and RRN not in row.prompt_encrypted
    messages = trail.PromptSealer(["MOIS"], key).open(row.prompt_encrypted)
    assert messages[-1]["content"] == f"주민번호 {RRN}"
    assert trail.PromptSealer(["OTHER"], key).seal("MOIS", messages) is None


def test_auditors_read_their_agency_over_http_and_nobody_else_does(platform):
    from hanchang.core.principal import Role
    from hanchang.store import accounts

    with platform.db.session() as session:
        accounts.create_user(session, "MOIS", "auditor", Role.AUDITOR)
        auditor = accounts.create_key(session, "MOIS", "auditor").secret
    ask(platform)
    records(platform, 1)
    read = httpx.get(platform.url + "/api/audit/records", headers=platform.headers(auditor), timeout=10)
    assert read.status_code == 200
    assert {r["agency_code"] for r in read.json()["data"]} == {"MOIS"}
    other = httpx.get(platform.url + "/api/audit/records", params={"agency": "KOSIS"},
                      headers=platform.headers(auditor), timeout=10)
    assert other.status_code == 403
    assert httpx.get(platform.url + "/api/audit/records", headers=platform.headers(),
                     timeout=10).status_code == 403  # a plain user
    verified = httpx.get(platform.url + "/api/audit/verify", headers=platform.headers(auditor), timeout=10)
    assert verified.json()["ok"] is True
    for method in ("PUT", "PATCH", "DELETE"):
        response = httpx.request(method, platform.url + "/api/audit/records",
                                 headers=platform.headers(auditor))
        assert response.status_code == 405


def test_a_cut_tail_with_a_rewound_head_is_caught_by_a_signed_checkpoint(platform, cli):
    for i in range(4):
        ask(platform, f"질문 {i}")
    rows = records(platform, 4)
    signed = cli("audit", "checkpoint")
    assert signed.exit_code == 0 and f"record {rows[-1].id}" in signed.stdout
    assert cli("audit", "verify").exit_code == 0
    tamper(platform, f"DELETE FROM audit_records WHERE id >= {rows[2].id}")
    with platform.db.engine.begin() as conn:  # and rewind the head, so the chain alone still verifies
        conn.execute(text("UPDATE audit_chain_head SET last_id = :i, last_hash = :h WHERE id = 1"),
                     {"i": rows[1].id, "h": rows[1].record_hash})
    result = cli("audit", "verify")
    assert result.exit_code == 1 and f"record {rows[-1].id}" in result.stderr and "cut" in result.stderr


def test_a_forged_checkpoint_is_caught(platform, cli):
    ask(platform)
    records(platform, 1)
    assert cli("audit", "checkpoint").exit_code == 0
    book = platform.settings.home / "audit" / "checkpoints.jsonl"
    entry = json.loads(book.read_text())
    entry["last_id"] += 5
    book.write_text(json.dumps(entry) + "\n")
    result = cli("audit", "verify")
    assert result.exit_code == 1 and "bad signature" in result.stderr


def test_truncate_is_refused_on_postgresql(platform):
    if platform.db.engine.dialect.name != "postgresql":
        pytest.skip("TRUNCATE is PostgreSQL's (on SQLite, DELETE is already refused)")
    ask(platform)
    records(platform, 1)
    for table in ("audit_records", "audit_chain_head"):
        with pytest.raises(DBAPIError, match="append-only"), platform.db.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {table}"))
