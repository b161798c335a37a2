"""No 민감/기밀 content reaches an external-zone model, on any path; PII leaves as placeholders
and comes back restored; unknown links are neutralised."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hanchang.config import LimitsConfig, PolicyConfig
from hanchang.core.grades import Grade
from hanchang.core.models import ModelSpec, Zone
from hanchang.core.policy import GradedItem
from hanchang.core.principal import Principal, Role
from hanchang.gateway.errors import PolicyRefused
from hanchang.gateway.limits import InProcessLimiter
from hanchang.gateway.registry import ModelRegistry
from hanchang.gateway.router import Call, Gateway

SECRET = "비밀작전계획-7731"  # marker text of classified content
RRN, PHONE = "800101-1234560", "010-2345-6789"


def config(internal, external, **extra):
    return {
        "models": [
            {"name": "ext-cloud", "backend": "openai", "base_url": external.base_url,
             "zone": "external", "max_grade": "O"},
            {"name": "int-s", "backend": "openai", "base_url": internal.base_url, "zone": "internal",
             "max_grade": "S", "fallbacks": ["ext-cloud"], "max_retries": 0},
            {"name": "int-c", "backend": "openai", "base_url": internal.base_url, "zone": "internal",
             "max_grade": "C"},
            {"name": "int-o", "backend": "openai", "base_url": internal.base_url, "zone": "internal",
             "max_grade": "O", "fallbacks": ["ext-cloud"], "max_retries": 0},
        ],
        **extra,
    }


def chat(platform, **body):
    body.setdefault("messages", [{"role": "user", "content": "안녕하세요"}])
    return httpx.post(platform.v1 + "/chat/completions", json=body, headers=platform.headers(),
                      timeout=15)


def stream_text(platform, **body) -> tuple[httpx.Response, str, dict]:
    with httpx.stream("POST", platform.v1 + "/chat/completions", json={**body, "stream": True},
                      headers=platform.headers(), timeout=15) as response:
        events = [json.loads(line[5:]) for line in response.iter_lines()
                  if line.startswith("data:") and line != "data: [DONE]"]
    text = "".join((c.get("delta") or {}).get("content") or ""
                   for e in events for c in e.get("choices") or ())
    return response, text, events[-1] if events else {}


def external_saw(external) -> str:
    return json.dumps(external.behaviour.received, ensure_ascii=False)


@pytest.mark.parametrize("stream", [False, True])
def test_sensitive_request_to_external_model_is_refused_in_korean(platform_factory, upstreams, stream):
    internal, external = upstreams
    platform = platform_factory(config(internal, external))
    body = {"model": "ext-cloud", "data_grade": "S",
            "messages": [{"role": "user", "content": f"{SECRET} 요약"}]}
    response = httpx.post(platform.v1 + "/chat/completions", json={**body, "stream": stream},
                          headers=platform.headers(), timeout=15)
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "data_grade_refused" and "민감(S) 등급 자료는 외부망 모델" in error["message"]
    assert external.behaviour.received == []


def test_reroutes_to_an_internal_model_and_says_so(platform_factory, upstreams):
    internal, external = upstreams
    platform = platform_factory(config(internal, external,
                                       policy={"reroute": True, "preferred_internal": ["int-c"]}))
    response = chat(platform, model="ext-cloud", data_grade="C",
                    messages=[{"role": "user", "content": SECRET}])
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "int-c" and body["choices"][0]["message"]["content"] == f"내부: {SECRET}"
    assert response.headers["x-hanchang-rerouted-from"] == "ext-cloud"
    assert response.headers["x-hanchang-data-grade"] == "C"
    assert "'ext-cloud' 대신" in body["hanchang"]["route_notice"]
    streamed, text, last = stream_text(platform, model="ext-cloud", data_grade="S",
                                       messages=[{"role": "user", "content": SECRET}])
    assert streamed.headers["x-hanchang-rerouted-from"] == "ext-cloud"
    assert text == f"내부: {SECRET}" and last["hanchang"]["rerouted_from"] == "ext-cloud"
    assert external.behaviour.received == []


@pytest.mark.parametrize("reroute", [False, True])
def test_attachments_raise_the_grade(platform_factory, upstreams, reroute):
    internal, external = upstreams
    platform = platform_factory(config(internal, external, policy={"reroute": reroute}))
    response = chat(platform, model="ext-cloud",
                    attachments=[{"name": "작전계획.hwp", "content": SECRET, "grade": "C"}],
                    messages=[{"role": "user", "content": "첨부를 요약해 주세요"}])
    if reroute:
        assert response.status_code == 200 and response.json()["model"] == "int-c"
        assert "attachment 작전계획.hwp C" in response.json()["hanchang"]["grade_reason"]
        assert SECRET in json.dumps(internal.behaviour.received, ensure_ascii=False)
    else:
        assert response.status_code == 403
    assert SECRET not in external_saw(external)


def test_open_attachment_goes_out(platform_factory, upstreams):
    internal, external = upstreams
    platform = platform_factory(config(internal, external))
    response = chat(platform, model="ext-cloud",
                    attachments=[{"name": "보도자료.txt", "content": "공개 보도자료 본문", "grade": "O"}])
    assert response.status_code == 200 and "공개 보도자료 본문" in external_saw(external)


def test_fallback_never_carries_sensitive_data_outside(platform_factory, upstreams):
    internal, external = upstreams
    platform = platform_factory(config(internal, external))
    internal.server.stop()  # int-s is down; its configured fallback is external (and only clears O)
    for stream in (False, True):
        response = httpx.post(platform.v1 + "/chat/completions", headers=platform.headers(),
                              timeout=15, json={"model": "int-s", "data_grade": "S", "stream": stream,
                                                "messages": [{"role": "user", "content": SECRET}]})
        assert response.status_code == 503
    assert external.behaviour.received == []
    # An open-data model may fall back outside; personal data is pseudonymized on the way.
    response = chat(platform, model="int-o", messages=[{"role": "user", "content": f"연락처 {PHONE}"}])
    assert response.status_code == 200 and response.json()["model"] == "ext-cloud"
    assert PHONE not in external_saw(external)
    assert response.json()["choices"][0]["message"]["content"] == f"외부: 연락처 {PHONE}"


def test_personal_data_is_pseudonymized_out_and_restored_back(platform_factory, upstreams):
    internal, external = upstreams
    platform = platform_factory(config(internal, external))
    question = f"민원인 주민번호 {RRN}, 연락처 {PHONE}로 회신 초안"
    response = chat(platform, model="ext-cloud", messages=[{"role": "user", "content": question}])
    assert response.status_code == 200
    sent = external_saw(external)
    assert RRN not in sent and PHONE not in sent and "[주민등록번호1]" in sent and "[전화번호1]" in sent
    assert response.json()["choices"][0]["message"]["content"] == f"외부: {question}"
    assert response.json()["hanchang"]["pii"] == {"mode": "pseudonymize", "counts": {"RRN": 1, "PHONE": 1}}
    _, text, last = stream_text(platform, model="ext-cloud",
                                messages=[{"role": "user", "content": question}])
    assert text == f"외부: {question}" and RRN not in external_saw(external)
    assert last["hanchang"]["pii"]["counts"] == {"RRN": 1, "PHONE": 1}
    # Internal models get the text as it is (allowed, counted).
    chat(platform, model="int-c", messages=[{"role": "user", "content": question}])
    assert RRN in json.dumps(internal.behaviour.received, ensure_ascii=False)


def test_mask_and_block_modes(platform_factory, upstreams):
    internal, external = upstreams
    platform = platform_factory(config(internal, external, pii={"external": "mask"}))
    masked = chat(platform, model="ext-cloud", messages=[{"role": "user", "content": f"연락처 {PHONE}"}])
    assert masked.json()["choices"][0]["message"]["content"] == "외부: 연락처 [전화번호1]"
    blocking = platform_factory(config(internal, external, pii={"external": "block"}))
    refused = chat(blocking, model="ext-cloud", messages=[{"role": "user", "content": f"주민번호 {RRN}"}])
    assert refused.status_code == 403
    assert "주민등록번호 1건" in refused.json()["error"]["message"]
    assert RRN not in external_saw(external)


def test_invented_links_are_neutralised(platform_factory, upstreams):
    internal, external = upstreams
    external.behaviour.prefix = "참고: https://phishing.example/kr "
    platform = platform_factory(config(internal, external))
    response = chat(platform, model="ext-cloud",
                    messages=[{"role": "user", "content": "근거 https://www.law.go.kr/법령 알려줘"}])
    answer = response.json()["choices"][0]["message"]["content"]
    assert "phishing.example" not in answer and "https://www.law.go.kr/법령" in answer
    assert response.json()["hanchang"]["links_removed"] == 1


def test_embeddings_obey_the_grade(platform_factory, upstreams):
    _, external = upstreams
    platform = platform_factory({"models": [
        {"name": "ext-embed", "backend": "openai", "base_url": external.base_url, "zone": "external",
         "max_grade": "O", "kind": "embedding"}]})
    response = httpx.post(platform.v1 + "/embeddings", headers=platform.headers(), timeout=15,
                          json={"model": "ext-embed", "input": [SECRET], "data_grade": "C"})
    assert response.status_code == 403 and external.behaviour.received == []
    ok = httpx.post(platform.v1 + "/embeddings", headers=platform.headers(), timeout=15,
                    json={"model": "ext-embed", "input": [f"연락처 {PHONE}"]})
    assert ok.status_code == 200 and PHONE not in external_saw(external)


# -- the routing decision, hammered ------------------------------------------------------
grades = st.sampled_from(list(Grade))
model_specs = st.lists(
    st.tuples(st.sampled_from(list(Zone)), grades, st.booleans()), min_size=1, max_size=6)

PRINCIPAL = Principal(1, "kim", 1, "MOIS", Role.USER, 1)


def build_registry(specs) -> ModelRegistry:
    models = []
    for i, (zone, grade, _) in enumerate(specs):
        clearance = grade if zone is Zone.INTERNAL else Grade.OPEN
        others = tuple(f"m{j}" for j in range(len(specs)) if j != i)
        models.append(ModelSpec(name=f"m{i}", backend="openai", zone=zone, max_grade=clearance,
                                base_url="http://127.0.0.1:9/v1", fallbacks=others))
    return ModelRegistry(models)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(model_specs, grades, st.lists(grades, max_size=4), st.booleans(), st.data())
def test_no_route_sends_sensitive_data_outside(specs, declared, item_grades, reroute, data):
    registry = build_registry(specs)
    requested = data.draw(st.sampled_from([m.name for m in registry]))
    gateway = Gateway(registry, InProcessLimiter(), LimitsConfig(), None,
                      PolicyConfig(reroute=reroute))
    items = [GradedItem("passage", f"doc{i}", g) for i, g in enumerate(item_grades)]
    call = Call(PRINCIPAL, "chat.completions", {"model": requested, "messages": []},
                grade=declared, items=items)
    try:
        candidates = gateway.route(call, "chat")
    except PolicyRefused:
        assert call.decision.model is None
        return
    effective = max([declared, *item_grades])
    assert call.effective.grade is effective
    assert candidates, "an allowed route has at least one model"
    for spec in candidates:
        assert spec.max_grade >= effective
        if spec.zone is Zone.EXTERNAL:
            assert effective is Grade.OPEN
    if not reroute:
        assert candidates[0].name == requested
