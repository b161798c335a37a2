"""Operations and governance: /metrics after known traffic, budgets (in-process, Redis, overrides),
SLO figures, feedback review and its JSONL export, the KPI report read back from XLSX/HWPX/CSV."""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from typer.testing import CliRunner

from conftest import default_models, serve
from hanchang.cli import app as cli
from hanchang.core.principal import Role
from hanchang.gateway.quotas import current_period
from hanchang.store.tables import (
    AuditRecord,
    Conversation,
    Feedback,
    HealthSample,
    Message,
    UsageRecord,
    User,
)

REDIS_URL = "redis://127.0.0.1:6379/0"
CHAT = {"model": "internal-a", "messages": [{"role": "user", "content": "a b"}]}


def chat(platform, key=None, body=CHAT, url=None):
    return httpx.post((url or platform.v1) + "/chat/completions", json=body, headers=platform.headers(key),
                      timeout=15)


def samples(text: str) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def scrape(url: str, headers: dict) -> dict[tuple[str, tuple], float]:
    response = httpx.get(url + "/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


def value(found: dict, name: str, **labels) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


# -- /metrics ---------------------------------------------------------------------------------
def test_metrics_count_known_traffic(platform_factory, upstream, monkeypatch):
    monkeypatch.setenv("HANCHANG_METRICS_TOKEN", "scrape-secret-1234")
    platform = platform_factory({
        "models": [{**default_models(upstream.base_url)[0],
                    "price": {"input_per_1k_tokens": 1000, "output_per_1k_tokens": 2000}}],
        "pii": {"internal": "mask"}})
    admin = platform.headers(platform.new_user_key("root", Role.PLATFORM_ADMIN))
    # Who may read: the token or a platform admin; not a user, not nobody.
    assert httpx.get(platform.url + "/metrics", timeout=5).status_code == 401
    assert "hanchang_build_info{" in httpx.get(platform.url + "/metrics", timeout=5,
                                              headers={"Authorization": "Bearer scrape-secret-1234"}).text
    assert httpx.get(platform.url + "/metrics", headers=platform.headers(), timeout=5).status_code == 403
    assert httpx.get(platform.url + "/metrics", headers={"Authorization": "Bearer wrong"}, timeout=5).status_code == 401
    before = scrape(platform.url, {"Authorization": "Bearer scrape-secret-1234"})

    assert chat(platform).status_code == 200  # "a b": 2 prompt + 3 completion tokens upstream
    streamed = httpx.post(platform.v1 + "/chat/completions", json={**CHAT, "stream": True},
                          headers=platform.headers(), timeout=15)
    assert streamed.status_code == 200
    pii = {**CHAT, "messages": [{"role": "user", "content": "연락처 010-2345-6789 로 알려 주세요"}]}
    assert chat(platform, body=pii).status_code == 200
    assert chat(platform, body={**CHAT, "model": "nope"}).status_code == 404
    platform.usage_rows(at_least=4)
    after = scrape(platform.url, admin)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    ok = {"model": "internal-a", "agency": "MOIS", "service": "chat.completions", "outcome": "ok"}
    assert delta("hanchang_requests_total", **ok) == 3
    # A model name a caller made up never becomes a label of its own (no unbounded series).
    assert delta("hanchang_requests_total", **{**ok, "model": "unknown", "outcome": "model_not_found"}) == 1
    assert not any(tuple(v for k, v in labels if k == "model") == ("nope",) for _, labels in after)
    assert delta("hanchang_request_duration_seconds_count", **ok) == 3
    assert delta("hanchang_time_to_first_token_seconds_count", model="internal-a", agency="MOIS",
                 service="chat.completions") == 1
    tokens_in = delta("hanchang_tokens_total", model="internal-a", agency="MOIS", service="chat.completions",
                      direction="in")
    tokens_out = delta("hanchang_tokens_total", model="internal-a", agency="MOIS", service="chat.completions",
                       direction="out")
    rows = [r for r in platform.usage_rows(at_least=4) if r.status == 200]
    assert tokens_in == sum(r.tokens_in for r in rows) and tokens_out == sum(r.tokens_out for r in rows)
    cost = delta("hanchang_cost_won_total", model="internal-a", agency="MOIS")
    assert cost == pytest.approx((tokens_in * 1000 + tokens_out * 2000) / 1000)
    assert sum(r.cost_won for r in rows) == pytest.approx(cost)
    assert delta("hanchang_pii_entities_total", type="PHONE", mode="mask") == 1
    assert value(after, "hanchang_upstream_up", model="internal-a") == 1
    assert "hanchang_retrieval_duration_seconds_count" in {name for name, _ in after}


def test_batched_histogram_writes_equal_one_by_one_observation():
    """Call figures are written in batches (audit.metrics.flush): per bucket and sum once each. The
    exposition must be what observing each value in turn gives, edges of buckets included."""
    from prometheus_client import Histogram

    from hanchang.audit import metrics

    values = [0.0, 0.05, 0.0500001, 0.1, 6.99, 7.0, 7.01, 10.0, 119.9, 120.0, 500.0, 0.3, 0.3, 2.0]
    exposed = []
    for batched in (False, True):
        registry = CollectorRegistry()
        histogram = Histogram("h", "test", ("model",), buckets=metrics.LATENCY_BUCKETS, registry=registry)
        child = histogram.labels("m")
        if batched:
            metrics._observe_all(child, values[:5])
            metrics._observe_all(child, values[5:])
        else:
            for v in values:
                child.observe(v)
        exposed.append({k: v for k, v in samples(generate_latest(registry).decode()).items()
                        if k[0] != "h_created"})
    assert exposed[0] == exposed[1]
    assert value(exposed[1], "h_bucket", model="m", le="7.0") == 9  # 0 … 6.99, 7.0, 0.3 twice, 2.0
    assert value(exposed[1], "h_count", model="m") == len(values)


def test_metrics_count_policy_reroutes_and_refusals(platform_factory, upstreams):
    internal, external = upstreams
    models = [{"name": "internal-a", "backend": "openai", "base_url": internal.base_url, "zone": "internal",
               "max_grade": "C"},
              {"name": "external-x", "backend": "openai", "base_url": external.base_url, "zone": "external",
               "max_grade": "O"}]
    refusing = platform_factory({"models": models})
    admin = refusing.headers(refusing.new_user_key("root", Role.PLATFORM_ADMIN))
    before = scrape(refusing.url, admin)
    sensitive = {"model": "external-x", "messages": CHAT["messages"], "data_grade": "S"}
    assert chat(refusing, body=sensitive).status_code == 403
    after = scrape(refusing.url, admin)
    assert value(after, "hanchang_policy_decisions_total", grade="S", decision="refuse") - \
        value(before, "hanchang_policy_decisions_total", grade="S", decision="refuse") == 1


# -- budgets ----------------------------------------------------------------------------------
def _redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


STORES = ["in-process", pytest.param("redis", marks=pytest.mark.skipif(not _redis_available(),
                                                                         reason="no Redis on 127.0.0.1:6379"))]


def budget_config(upstream, budgets, store, **extra):
    data = {"models": default_models(upstream.base_url), "budgets": budgets, **extra}
    if store == "redis":
        data.update(redis_url=REDIS_URL, redis_prefix=f"test-{uuid.uuid4().hex[:8]}")
    return data


@pytest.mark.parametrize("store", STORES)
def test_agency_request_budget_stops_cleanly_with_korean_429(platform_factory, upstream, store):
    platform = platform_factory(budget_config(upstream, {"per_agency": {"requests": 5}}, store))
    answers = [chat(platform) for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    assert "budget" not in answers[2].json()["hanchang"]  # 3/5 = 60 %: no warning yet
    warned = answers[3].json()["hanchang"]["budget"]  # 4/5 = 80 %: the window warns
    assert warned["used_share"] == 0.8 and warned["kind"] == "requests" and "80%" in warned["message"]
    refused = chat(platform)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "budget_exhausted"
    assert "기관 MOIS" in error["message"] and "예산" in error["message"] and "관리자" in error["message"]
    period = current_period(platform.settings.budgets)
    wait = int(refused.headers["retry-after"])
    assert abs(wait - (period.resets_at.timestamp() - time.time())) < 5  # the next calendar reset
    assert len(upstream.behaviour.received) == 5  # the refused request never reached a model
    # Another agency has its own budget.
    from hanchang.store import accounts

    with platform.db.session() as session:
        accounts.create_agency(session, "MOLEG", "법제처")
    assert chat(platform, platform.new_user_key("park", Role.USER, "MOLEG")).status_code == 200
    rows = platform.usage_rows(at_least=7)
    assert sorted(r.status for r in rows) == [200] * 6 + [429]


@pytest.mark.parametrize("store", STORES)
def test_won_budget_counts_cost_at_configured_price(platform_factory, upstream, store):
    models = [{**default_models(upstream.base_url)[0], "price": {"input_per_1k_tokens": 500,
                                                                "output_per_1k_tokens": 1000}}]
    platform = platform_factory({**budget_config(upstream, {"per_user": {"won": 10}}, store), "models": models})
    # Each call: 2 prompt tokens (1 won) + 3 completion tokens (3 won) = 4 won.
    assert [chat(platform).status_code for _ in range(3)] == [200, 200, 200]  # 12 won: spent
    refused = chat(platform)
    assert refused.status_code == 429 and "사용자 kim" in refused.json()["error"]["message"]
    assert "10원" in refused.json()["error"]["message"]
    # A colleague of the same agency has their own user budget.
    assert chat(platform, platform.new_user_key("lee", Role.USER)).status_code == 200


def test_admin_override_raises_a_budget_and_is_audited(platform_factory, upstream):
    platform = platform_factory(budget_config(upstream, {"per_agency": {"requests": 1}}, "in-process"))
    assert chat(platform).status_code == 200
    assert chat(platform).status_code == 429
    agency_admin = platform.headers(platform.new_user_key("boss", Role.AGENCY_ADMIN))
    root = platform.headers(platform.new_user_key("root", Role.PLATFORM_ADMIN))
    # An agency admin may not raise their own agency's budget.
    denied = httpx.put(platform.url + "/api/ops/budgets/agency:MOIS", json={"requests": 100},
                       headers=agency_admin, timeout=5)
    assert denied.status_code == 403 and "플랫폼 관리자" in denied.json()["error"]["message"]
    bad = httpx.put(platform.url + "/api/ops/budgets/agency:NOPE", json={"requests": 3}, headers=root, timeout=5)
    assert bad.status_code == 404
    raised = httpx.put(platform.url + "/api/ops/budgets/agency:MOIS", json={"requests": 3, "note": "행사 기간"},
                       headers=root, timeout=5)
    assert raised.status_code == 200, raised.text
    assert [chat(platform).status_code for _ in range(3)] == [200, 200, 429]  # 1 used + 2 more = 3
    standing = httpx.get(platform.url + "/api/ops/budgets", headers=agency_admin, timeout=5).json()
    mois = next(r for r in standing["data"] if r["scope"] == "agency:MOIS")
    assert mois["limits"]["requests"] == 3 and mois["used"]["requests"] == 3 and mois["overridden"]
    assert [r["agency"] for r in standing["data"]] == ["MOIS"]  # an agency admin sees their own agency
    with platform.db.session() as session:
        actions = [r.action for r in session.scalars(select(AuditRecord).where(AuditRecord.category == "admin"))]
    assert "budget.override" in actions
    assert httpx.delete(platform.url + "/api/ops/budgets/agency:MOIS", headers=root, timeout=5).status_code == 204
    assert chat(platform).status_code == 429  # back to the configured 1


def test_an_unreachable_budget_counter_refuses(platform_factory, upstream):
    from hanchang_devtools.threaded_server import free_port

    platform = platform_factory({"models": default_models(upstream.base_url), "budgets": {"per_agency": {
        "tokens": 1000}}, "redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    refused = chat(platform)
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "rate_limiter_unavailable"
    assert upstream.behaviour.received == []


@pytest.mark.skipif(not _redis_available(), reason="no Redis on 127.0.0.1:6379")
def test_budgets_hold_across_two_server_processes(tmp_path, database_url, upstream):
    """Two `hanchang serve` processes share Redis: a request budget is never overspent, and a token
    budget by at most the one request each process had running when it ran out."""
    import concurrent.futures
    import os

    from conftest import launch_platform

    prefix = f"test-{uuid.uuid4().hex[:8]}"
    config = {"models": default_models(upstream.base_url), "redis_url": REDIS_URL, "redis_prefix": prefix,
              "budgets": {"per_agency": {"requests": 40}, "per_user": {"tokens": 60}},
              "limits": {"per_key": {"requests_per_minute": 0}}}
    setup = launch_platform(tmp_path, database_url, config)
    setup.server.stop()
    lee = setup.new_user_key("lee", Role.USER)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HANCHANG_", "PROMETHEUS_"))}
    env.update(HANCHANG_HOME=str(setup.settings.home), HANCHANG_CONFIG=str(tmp_path / "hanchang.yaml"),
               HANCHANG_DATABASE_URL=database_url)
    servers, urls = zip(*(serve(env) for _ in range(2)), strict=True)
    try:
        # 1) Requests: 40 for the agency, 60 asked at once through both processes, 4 users' keys.
        keys = [setup.key] + [setup.new_user_key(f"u{i}", Role.USER) for i in range(3)]

        def ask(i):
            return chat(setup, keys[i % 4], url=urls[i % 2] + "/v1").status_code
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            statuses = list(pool.map(ask, range(60)))
        assert statuses.count(200) == 40 and statuses.count(429) == 20, statuses
        # 2) Tokens: lee's own 60-token budget (5 tokens a call), one caller per process at a time.
        root_key = setup.new_user_key("root", Role.PLATFORM_ADMIN)
        httpx.put(urls[0] + "/api/ops/budgets/agency:MOIS", json={"requests": 0}, headers=setup.headers(root_key),
                  timeout=5).raise_for_status()
        time.sleep(6)  # the other process reads overrides again within 5 s

        def drain(url):
            done = 0
            while chat(setup, lee, url=url + "/v1").status_code == 200:
                done += 1
            return done
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            answered = sum(pool.map(drain, urls))
        assert 12 <= answered <= 12 + 2  # 60 / 5 = 12, plus at most one in flight per process
        # Each server's figures reach its multiprocess samples directory within a second without a
        # scrape (metrics.flush_periodically), as a sibling worker's /metrics would read them.
        time.sleep(1.5)
        written = {}
        for port in (url.rsplit(":", 1)[1] for url in urls):
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=str(setup.settings.home / "run" / f"metrics-{port}"))
            for name, count in samples(generate_latest(registry).decode()).items():
                written[name] = written.get(name, 0) + count

        def requests_total(found, outcome):
            return sum(v for (name, labels), v in found.items()
                       if name == "hanchang_requests_total" and ("outcome", outcome) in labels)
        assert requests_total(written, "ok") == 40 + answered
        assert requests_total(written, "budget_exhausted") == 20 + 2  # the first 20, then each drain's last
        # Each server (one scrape target a host) reports its own share; together the same figures.
        scraped = [scrape(url, setup.headers(root_key)) for url in urls]
        assert sum(requests_total(found, "ok") for found in scraped) == 40 + answered
        assert sum(value(found, "hanchang_budget_refusals_total", scope="agency:MOIS", kind="requests")
                   for found in scraped) == 20
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(10)
        setup.db.dispose()


# -- SLOs -------------------------------------------------------------------------------------
def _usage(agency="MOIS", *, at=None, latency_ms=1000, status=200, grounded=False, endpoint="chat.completions",
           user_id=1, model="internal-a", **extra) -> UsageRecord:
    return UsageRecord(created_at=at or datetime.now(UTC) - timedelta(minutes=5), request_id=uuid.uuid4().hex,
                       user_id=user_id, user_name=f"u{user_id}", agency_code=agency, endpoint=endpoint,
                       model_requested=model, model_used=model if status == 200 else None, status=status,
                       latency_ms=latency_ms, grounded=grounded, **extra)


def test_slo_measures_against_the_guideline_targets(platform):
    with platform.db.session() as session:
        # Grounded Q&A: 9 fast, 1 slow (p90 at the line); inference: all within 10 s.
        session.add_all([_usage(latency_ms=2000 + i * 100, grounded=True, user_id=i) for i in range(9)])
        session.add(_usage(latency_ms=9000, grounded=True))
        session.add_all([_usage(latency_ms=4000) for _ in range(10)])
        session.add_all([_usage(status=503, latency_ms=100) for _ in range(2)])
        session.add(_usage(latency_ms=500, endpoint="embeddings"))
        now = datetime.now(UTC)
        session.add_all([HealthSample(created_at=now - timedelta(minutes=i), model="internal-a", ok=i != 3)
                         for i in range(10)])
    root = platform.headers(platform.new_user_key("root", Role.PLATFORM_ADMIN))
    report = httpx.get(platform.url + "/api/ops/slo", params={"window": "day"}, headers=root, timeout=10).json()
    qa = next(o for o in report["latency"] if o["kind"] == "qa")
    assert qa["calls"] == 10 and qa["target_s"] == 7.0
    assert qa["within_share"] == 0.9 and qa["budget_used"] == pytest.approx(1.0)
    inference = next(o for o in report["latency"] if o["kind"] == "inference")
    assert inference["met"] and inference["measured_s"] == pytest.approx(4.0)
    assert all(o["service"] != "embeddings" for o in report["latency"])
    available = next(o for o in report["availability"] if o["model"] == "internal-a")
    assert available["probe_availability"] == pytest.approx(0.9)
    assert available["request_availability"] == pytest.approx(1 - 2 / 23)
    assert available["measured"] == pytest.approx(0.9) and available["met"] is False  # the lower of the two
    assert report["capacity"]["peak_users"] >= 9 and report["capacity"]["capacity_users"] == 100
    assert report["targets"]["availability"] == 0.9999
    result = CliRunner().invoke(cli, ["slo", "--window", "day"],
                                env={"HANCHANG_CONFIG": str(platform.settings.config), "COLUMNS": "200",
                                     "HANCHANG_DATABASE_URL": platform.settings.resolved_database_url})
    assert result.exit_code == 0, result.output
    assert "응답시간" in result.output and "가용성" in result.output and "internal-a" in result.output


def test_operations_figures_are_scoped_to_the_admins_agency(platform):
    with platform.db.session() as session:
        session.add_all([_usage("MOIS", tokens_in=10, tokens_out=5, cost_won=2.5) for _ in range(3)])
        session.add_all([_usage("MOLEG", tokens_in=100) for _ in range(4)])
        session.add(_usage("MOIS", status=503, error_code="upstream_unavailable"))
    boss = platform.headers(platform.new_user_key("boss", Role.AGENCY_ADMIN))
    mine = httpx.get(platform.url + "/api/ops/overview", headers=boss, timeout=10).json()
    assert mine["agency"] == "MOIS" and mine["totals"]["calls"] == 4 and mine["totals"]["tokens"] == 45
    assert mine["totals"]["cost_won"] == 7.5 and mine["failures"][0]["code"] == "upstream_unavailable"
    other = httpx.get(platform.url + "/api/ops/overview", params={"agency": "MOLEG"}, headers=boss, timeout=10)
    assert other.status_code == 403
    user = httpx.get(platform.url + "/api/ops/overview", headers=platform.headers(), timeout=10)
    assert user.status_code == 403
    root = platform.headers(platform.new_user_key("root", Role.PLATFORM_ADMIN))
    everyone = httpx.get(platform.url + "/api/ops/overview", headers=root, timeout=10).json()
    assert everyone["totals"]["calls"] == 8
    assert sum(everyone["calls_by_model"]["internal-a"]) == 8  # a failed call counts for the model asked
    backwards = httpx.get(platform.url + "/api/ops/overview", params={"start": "2026-11-10", "end": "2026-11-01"},
                          headers=root, timeout=10)
    assert backwards.status_code == 422 and "날짜" in backwards.json()["error"]["message"]


# -- feedback review --------------------------------------------------------------------------
def _rated_answer(session, agency: str, user: str, question: str, answer: str, rating: int, reason: str = "",
                  grade: str = "O") -> int:
    from hanchang.store import accounts

    try:
        owner = accounts.get_user(session, agency, user)
    except accounts.AccountError:
        owner = accounts.create_user(session, agency, user, Role.USER)
    conversation = Conversation(user_id=owner.id, title=question[:20])
    session.add(conversation)
    session.flush()
    session.add(Message(conversation_id=conversation.id, role="user", content=question, grade=grade))
    citations = [{"index": 1, "title": "가이드라인", "section": "3.2.5", "grade": "O", "chunk_id": 7,
                  "document_id": 3, "text": "전문"}]
    reply = Message(conversation_id=conversation.id, role="assistant", content=answer, grade=grade,
                    model="internal-a", meta=json.dumps({"citations": citations}))
    session.add(reply)
    session.flush()
    feedback = Feedback(message_id=reply.id, user_id=owner.id, agency_code=agency, rating=rating, reason=reason)
    session.add(feedback)
    session.flush()
    return feedback.id


def test_feedback_review_marks_and_exports_an_evaluation_set(platform):
    from hanchang.store import accounts

    with platform.db.session() as session:
        accounts.create_agency(session, "MOLEG", "법제처")
        bad = _rated_answer(session, "MOIS", "kim", "홍길동 010-2345-6789 민원 처리 기한은?", "3일입니다.", -1,
                            "기한이 틀림", grade="S")
        _rated_answer(session, "MOIS", "kim", "가용성 목표는?", "99.99%", 1)
        theirs = _rated_answer(session, "MOLEG", "park", "법령 해석 기한은?", "모름", -1)
    boss = platform.headers(platform.new_user_key("boss", Role.AGENCY_ADMIN))
    listed = httpx.get(platform.url + "/api/ops/feedback", headers=boss, timeout=10).json()["data"]
    assert [item["id"] for item in listed] == [bad]  # 👎 only, own agency only
    item = listed[0]
    assert item["question"].startswith("홍길동") and item["reason"] == "기한이 틀림"
    assert item["sources"][0]["section"] == "3.2.5" and item["grade"] == "S"
    # Another agency's feedback does not exist for this admin.
    assert httpx.post(platform.url + f"/api/ops/feedback/{theirs}/review", json={"status": "resolved"},
                      headers=boss, timeout=5).status_code == 404
    assert httpx.post(platform.url + f"/api/ops/feedback/{bad}/review", json={"status": "done"},
                      headers=boss, timeout=5).status_code == 422
    marked = httpx.post(platform.url + f"/api/ops/feedback/{bad}/review",
                        json={"status": "knowledge_gap", "expected_answer": "처리 기한은 7일, 담당 010-2345-6789"},
                        headers=boss, timeout=5)
    assert marked.status_code == 200 and marked.json()["status"] == "knowledge_gap"
    assert httpx.get(platform.url + "/api/ops/feedback", params={"status": "open"}, headers=boss,
                     timeout=5).json()["data"] == []
    export = httpx.get(platform.url + "/api/ops/feedback/export", headers=boss, timeout=10)
    assert export.status_code == 200 and "attachment" in export.headers["content-disposition"]
    lines = [orjson.loads(line) for line in export.content.splitlines()]
    assert len(lines) == 1
    line = lines[0]
    assert "010-2345-6789" not in export.text and "[전화번호1]" in line["question"]
    assert "[전화번호1]" in line["expected_answer"]  # the same value, the same placeholder
    assert line["grade"] == "S" and line["review_status"] == "knowledge_gap"
    assert line["sources"][0]["chunk_id"] == 7 and "text" not in line["sources"][0]
    with platform.db.session() as session:
        assert session.scalar(select(AuditRecord).where(AuditRecord.action == "feedback.review")) is not None


# -- the KPI report ---------------------------------------------------------------------------
def test_kpi_report_from_generated_usage_reads_back(platform, tmp_path):
    from openpyxl import load_workbook

    from hanchang.knowledge.parsers.hwpx import parse_hwpx

    def seoul(*when) -> datetime:  # stored as the platform stores times: in UTC
        return datetime(*when, tzinfo=ZoneInfo("Asia/Seoul")).astimezone(UTC)

    october = seoul(2026, 10, 15, 3, 0)
    with platform.db.session() as session:
        user_id = session.scalar(select(User.id).where(User.name == "kim"))
        session.add_all([_usage(at=october, grounded=True, endpoint="service.qa", latency_ms=3000, user_id=user_id,
                                tokens_in=100, tokens_out=50, cost_won=1.5) for _ in range(8)])
        session.add_all([_usage(at=october, latency_ms=5000, user_id=user_id, pii_masked=2) for _ in range(4)])
        session.add(_usage(at=october, status=403, error_code="data_grade_refused", user_id=user_id))
        # Past midnight in Seoul on 1 November (still 31 October in UTC): not in October's report.
        session.add(_usage(at=seoul(2026, 11, 1, 0, 30)))
        session.add(_usage(at=seoul(2026, 10, 31, 23, 30), user_id=user_id))
        _rated_answer(session, "MOIS", "kim", "질문", "답", 1)
        _rated_answer(session, "MOIS", "kim", "질문2", "답2", -1)
        for f in session.scalars(select(Feedback)):
            f.created_at = october
    boss = platform.headers(platform.new_user_key("boss", Role.AGENCY_ADMIN))
    report = httpx.get(platform.url + "/api/ops/report", params={"period": "2026-10", "format": "json"},
                       headers=boss, timeout=10).json()
    figures = {i["name"]: i for i in report["indicators"]}
    assert {i["group"] for i in report["indicators"]} == {"투입", "과정", "산출", "결과"}
    assert figures["전체 호출 수"]["value"] == 14
    assert figures["서비스별 호출 수: service.qa"]["value"] == 8
    assert figures["토큰 사용량"]["value"] == 8 * 150 and figures["모델 사용 비용"]["value"] == 12.0
    assert figures["질의응답 응답시간 (p90)"]["value"] == 3.0
    assert figures["등급·개인정보 정책 차단"]["value"] == 1 and figures["개인정보 보호조치"]["value"] == 8
    assert figures["근거 기반 답변 비율"]["value"] == pytest.approx(8 / 13 * 100, abs=0.1)
    assert figures["답변 만족도 (▲ 도움이 됨 비율)"]["value"] == 50.0
    assert figures["추정 절감 업무시간"]["value"] == pytest.approx((8 * 10 + 5 * 5) / 60, abs=0.06)  # shown to 0.1 h
    assert "10분" in figures["추정 절감 업무시간"]["definition"]  # the assumption is stated

    xlsx = httpx.get(platform.url + "/api/ops/report", params={"period": "2026-10", "format": "xlsx"},
                     headers=boss, timeout=10)
    assert xlsx.status_code == 200 and "hanchang-kpi-MOIS-2026-10.xlsx" in xlsx.headers["content-disposition"]
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    rows = {row[1]: row for row in sheet.iter_rows(min_row=5, values_only=True)}
    assert rows["전체 호출 수"][2] == 14 and rows["전체 호출 수"][0] == "산출"
    hwpx = httpx.get(platform.url + "/api/ops/report", params={"period": "2026-10", "format": "hwpx"},
                     headers=boss, timeout=10)
    path = tmp_path / "kpi.hwpx"
    path.write_bytes(hwpx.content)
    text = parse_hwpx(path).text
    assert "성과지표 보고서" in text and "전체 호출 수" in text and "추정 절감 업무시간" in text
    csv_text = httpx.get(platform.url + "/api/ops/report", params={"period": "2026-10", "format": "csv"},
                         headers=boss, timeout=10).content.decode("utf-8-sig")
    table = list(csv.reader(io.StringIO(csv_text)))
    assert table[0] == ["구분", "지표", "값", "단위", "정의", "출처"] and table[
        next(i for i, r in enumerate(table) if r[1] == "전체 호출 수")][:3] == ["산출", "전체 호출 수", "14"]
    # Another agency's report is not this admin's to read; a bad period is a clear 422.
    assert httpx.get(platform.url + "/api/ops/report", params={"agency": "OTHER"}, headers=boss,
                     timeout=5).status_code == 403
    bad = httpx.get(platform.url + "/api/ops/report", params={"period": "2026-13"}, headers=boss, timeout=5)
    assert bad.status_code == 422 and "YYYY-MM" in bad.json()["error"]["message"]
    # And from the command line.
    out = tmp_path / "report.hwpx"
    result = CliRunner().invoke(cli, ["report", "--agency", "MOIS", "--period", "2026-10", "--format", "hwpx",
                                      "-o", str(out)],
                                env={"HANCHANG_CONFIG": str(platform.settings.config), "COLUMNS": "200",
                                     "HANCHANG_DATABASE_URL": platform.settings.resolved_database_url})
    assert result.exit_code == 0, result.output
    assert "전체 호출 수" in parse_hwpx(out).text


def test_budget_and_review_changes_commit_only_with_their_audit_record(platform):
    """When the audit record cannot be written, the change it records is not kept either."""
    from sqlalchemy import func, text

    from hanchang.store.tables import BudgetOverride

    with platform.db.session() as session:
        bad = _rated_answer(session, "MOIS", "kim", "질문", "답", -1)
    root = platform.headers(platform.new_user_key("root", Role.PLATFORM_ADMIN))
    first = httpx.put(platform.url + "/api/ops/budgets/agency:MOIS", json={"requests": 10}, headers=root, timeout=5)
    assert first.status_code == 200
    with platform.db.session() as session:
        last = session.scalar(select(func.max(AuditRecord.id)))
        good_hash = session.scalar(text("SELECT last_hash FROM audit_chain_head WHERE id = 1"))
        # The chain head now points one record back: the next append collides with an existing id.
        session.execute(text("UPDATE audit_chain_head SET last_id = :i WHERE id = 1"), {"i": last - 1})
    try:
        changed = httpx.put(platform.url + "/api/ops/budgets/agency:MOIS", json={"requests": 99}, headers=root,
                            timeout=5)
        reviewed = httpx.post(platform.url + f"/api/ops/feedback/{bad}/review", json={"status": "resolved"},
                              headers=root, timeout=5)
        assert changed.status_code == 500 and reviewed.status_code == 500
        with platform.db.session() as session:
            assert session.scalar(select(BudgetOverride.requests).where(BudgetOverride.scope == "agency:MOIS")) == 10
            assert session.get(Feedback, bad).review_status == "open"
            assert session.scalar(select(func.max(AuditRecord.id))) == last
    finally:
        with platform.db.session() as session:
            session.execute(text("UPDATE audit_chain_head SET last_id = :i, last_hash = :h WHERE id = 1"),
                            {"i": last, "h": good_hash})
