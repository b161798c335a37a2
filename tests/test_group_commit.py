"""An answer leaves only with its records: the usage row and audit record of a call are in the
database when its last bytes (a JSON body, a stream's closing chunk and [DONE]) reach the client;
when they cannot be written, the answer is withheld with a clear 503 and the records follow once
the database takes them again."""

from __future__ import annotations

import json
import sqlite3
import threading
import time

import httpx
from sqlalchemy import create_engine, func, select, text

from hanchang.audit import recorder
from hanchang.gateway import router
from hanchang.store.db import normalise_url
from hanchang.store.tables import AuditRecord, UsageRecord

BODY = {"model": "internal-a", "messages": [{"role": "user", "content": "회의록 요약해 줘"}]}


def recorded(platform, request_id: str) -> tuple[int, int]:
    """(usage rows, audit records) of the call — read without taking SQLite's write lock, which a
    test may be holding."""
    outcomes = audit_outcomes(platform, request_id)
    url = platform.settings.resolved_database_url
    if url.startswith("sqlite"):
        with sqlite3.connect(url.split("///", 1)[1]) as connection:
            usage = connection.execute("SELECT count(*) FROM usage_records WHERE request_id = ?",
                                       (request_id,)).fetchone()[0]
    else:
        with platform.db.session() as session:
            usage = session.scalar(select(func.count()).select_from(UsageRecord)
                                   .where(UsageRecord.request_id == request_id))
    return usage, len([outcome for outcome, _ in outcomes if outcome != "withheld"])


def audit_outcomes(platform, request_id: str) -> list[tuple[str, int]]:
    """The call's audit records as (outcome, status), in the trail's order."""
    url = platform.settings.resolved_database_url
    if url.startswith("sqlite"):
        with sqlite3.connect(url.split("///", 1)[1]) as connection:
            rows = connection.execute("SELECT outcome, status FROM audit_records WHERE request_id = ? "
                                      "ORDER BY id", (request_id,)).fetchall()
    else:
        with platform.db.session() as session:
            rows = session.execute(select(AuditRecord.outcome, AuditRecord.status)
                                   .where(AuditRecord.request_id == request_id).order_by(AuditRecord.id)).all()
    return [tuple(row) for row in rows]


def stream(platform) -> tuple[httpx.Response, str]:
    with httpx.stream("POST", platform.v1 + "/chat/completions", headers=platform.headers(), timeout=30,
                      json={**BODY, "stream": True}) as response:
        return response, "".join(response.iter_text())


class AuditLocked:
    """Another connection holding what appending to the audit trail needs: SQLite's write lock,
    or PostgreSQL's chain head row."""

    def __init__(self, database_url: str):
        self.url = database_url

    def __enter__(self):
        if self.url.startswith("sqlite"):
            self.connection = sqlite3.connect(self.url.split("///", 1)[1], isolation_level=None)
            self.connection.execute("BEGIN IMMEDIATE")
        else:
            self.engine = create_engine(normalise_url(self.url))
            self.connection = self.engine.connect()
            self.connection.execute(text("SELECT * FROM audit_chain_head FOR UPDATE"))
        return self

    def __exit__(self, *exc):
        self.connection.rollback()
        self.connection.close()
        if not self.url.startswith("sqlite"):
            self.engine.dispose()


def wait_for_trail(platform, expected: dict[str, list[tuple[str, int]]]) -> None:
    """Wait until each request's audit records are the expected (outcome, status)s."""
    deadline = time.monotonic() + 30
    while {request_id: audit_outcomes(platform, request_id) for request_id in expected} != expected:
        assert time.monotonic() < deadline, "the queued records were not written once the lock was gone"
        time.sleep(0.1)


def test_records_are_committed_before_the_answer_and_an_unrecordable_answer_is_withheld(
        platform, upstream, database_url, monkeypatch):
    # Answered: the records are there the moment the answer is, for a whole answer and a stream.
    answer = httpx.post(platform.v1 + "/chat/completions", headers=platform.headers(), json=BODY, timeout=30)
    assert answer.status_code == 200
    assert recorded(platform, answer.headers["x-request-id"]) == (1, 1)
    response, body = stream(platform)
    assert body.rstrip().endswith("data: [DONE]")
    assert recorded(platform, response.headers["x-request-id"]) == (1, 1)

    # The audit trail cannot be written: the answer is withheld, saying so in Korean first.
    monkeypatch.setattr(router, "RECORD_WAIT_S", 1.0)
    with AuditLocked(database_url):
        started = time.monotonic()
        refused = httpx.post(platform.v1 + "/chat/completions", headers=platform.headers(), json=BODY, timeout=30)
        assert refused.status_code == 503
        error = refused.json()["error"]
        assert error["code"] == "audit_unavailable" and error["message"].startswith("감사 기록을 저장하지 못해")
        assert "choices" not in refused.json()
        assert 1.0 <= time.monotonic() - started < 10
        assert recorded(platform, refused.headers["x-request-id"]) == (0, 0)
    # The database is back: the withheld call's records are written, then an audit entry saying
    # its answer was withheld (the usage row, the model's work, is there once).
    wait_for_trail(platform, {refused.headers["x-request-id"]: [("ok", 200), ("withheld", 503)]})
    assert recorded(platform, refused.headers["x-request-id"]) == (1, 1)

    # A stream: its text may have gone out, but not its finishing chunk or [DONE].
    with AuditLocked(database_url):
        cut, body = stream(platform)
        assert "audit_unavailable" in body and "[DONE]" not in body and '"finish_reason":"stop"' not in body
        # Records have now waited longer than an answer may wait for them: a new call is refused
        # at once, before any model is called (the upstream sees nothing).
        calls_made = len(upstream.behaviour.received)
        started = time.monotonic()
        for streamed in (False, True):
            early = httpx.post(platform.v1 + "/chat/completions", headers=platform.headers(),
                               json={**BODY, "stream": streamed}, timeout=30)
            assert early.status_code == 503 and early.json()["error"]["code"] == "audit_unavailable"
            assert early.json()["error"]["message"].startswith("감사 기록이 저장되지 못하고 있어")
        assert time.monotonic() - started < 1.0
        assert len(upstream.behaviour.received) == calls_made
    wait_for_trail(platform, {cut.headers["x-request-id"]: [("ok", 200), ("withheld", 503)],
                              early.headers["x-request-id"]: [("audit_unavailable", 503)]})
    again = httpx.post(platform.v1 + "/chat/completions", headers=platform.headers(), json=BODY, timeout=30)
    assert again.status_code == 200 and recorded(platform, again.headers["x-request-id"]) == (1, 1)


def refusal_records(platform) -> list[tuple[str | None, dict]]:
    """(request id, detail) of every audit record of a call refused for want of an audit trail."""
    url = platform.settings.resolved_database_url
    query = "SELECT request_id, detail FROM audit_records WHERE outcome = 'audit_unavailable' ORDER BY id"
    if url.startswith("sqlite"):
        with sqlite3.connect(url.split("///", 1)[1]) as connection:
            rows = connection.execute(query).fetchall()
    else:
        with platform.db.session() as session:
            rows = session.execute(text(query)).all()
    return [(request_id, json.loads(detail or "{}")) for request_id, detail in rows]


def test_a_long_outage_counts_refusals_instead_of_holding_each_in_memory(platform, database_url, monkeypatch):
    """Records held in memory are capped: beyond the cap, calls refused because the trail is not
    being written are counted per person and service, and every one of them is in the trail
    (listed or counted) once the database is back."""
    monkeypatch.setattr(router, "RECORD_WAIT_S", 1.0)
    monkeypatch.setattr(recorder, "MAX_PENDING", 3)
    # Signed in once with the trail writable (on SQLite a key not yet cached is looked up in a
    # transaction that would wait on the lock the test holds).
    assert httpx.post(platform.v1 + "/chat/completions", headers=platform.headers(), json=BODY,
                      timeout=30).status_code == 200
    with AuditLocked(database_url):
        withheld = httpx.post(platform.v1 + "/chat/completions", headers=platform.headers(), json=BODY, timeout=30)
        assert withheld.status_code == 503
        refused = []
        for _ in range(12):
            response = httpx.post(platform.v1 + "/chat/completions", headers=platform.headers(), json=BODY,
                                  timeout=30)
            assert response.status_code == 503 and response.json()["error"]["code"] == "audit_unavailable"
            refused.append(response.headers["x-request-id"])
    deadline = time.monotonic() + 30
    while True:
        found = refusal_records(platform)
        listed = [request_id for request_id, _ in found if request_id in refused]
        counted = [detail for request_id, detail in found if request_id is None]
        if len(listed) + sum(d["refused_calls"] for d in counted) == 12:
            break
        assert time.monotonic() < deadline, f"refusals missing from the trail: {found}"
        time.sleep(0.1)
    assert counted and len(listed) < 12  # the cap was reached: the rest were counted, not listed
    assert all(d["counted_not_listed"] and d["first_at"] <= d["last_at"] for d in counted)
    assert audit_outcomes(platform, withheld.headers["x-request-id"]) == [("ok", 200), ("withheld", 503)]
    again = httpx.post(platform.v1 + "/chat/completions", headers=platform.headers(), json=BODY, timeout=30)
    assert again.status_code == 200 and recorded(platform, again.headers["x-request-id"]) == (1, 1)


def test_forty_callers_at_once_each_get_their_answer_with_its_records(platform):
    statuses: list[int] = []
    ids: list[str] = []

    def ask(i: int) -> None:
        if i % 2:
            response, body = stream(platform)
            assert body.rstrip().endswith("data: [DONE]")
        else:
            response = httpx.post(platform.v1 + "/chat/completions", headers=platform.headers(), json=BODY,
                                  timeout=30)
        # Checked as each answer arrives, while the others are still being recorded.
        assert recorded(platform, response.headers["x-request-id"]) == (1, 1)
        statuses.append(response.status_code)
        ids.append(response.headers["x-request-id"])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert statuses == [200] * 40 and len(set(ids)) == 40
