"""The evaluation harness end to end: sets, scorers, runs in OpenAI's Evals shapes (driven by the
openai SDK), the grade binding the judge, paired comparison, and the CLI — against a recording
OpenAI-compatible upstream, so what each item sent to a model is proved, not assumed."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from openai import OpenAI, PermissionDeniedError
from sqlalchemy import select
from typer.testing import CliRunner

from conftest import SHARED, start_upstream
from hanchang.cli import app
from hanchang.core.errors import InvalidInput
from hanchang.evals import compare, datasets, scorers
from hanchang.evals.datasets import Item
from hanchang.store.tables import AuditRecord, EvalRun

RULES = ("제3조(등급) 업무 중요도에 따라 기밀, 민감, 공개의 3개 등급으로 분류한다.\n"
         "제4조(응답) 문답 서비스의 90% 이상은 7초 이내에 답한다.\n")


# -- sets ---------------------------------------------------------------------------------------
def test_items_are_checked_line_by_line_with_errors_that_say_where():
    items = datasets.parse_jsonl('{"id": "a", "question": "등급은?", "facts": ["기밀", ["1곳", "한 곳"]]}\n'
                                 '{"item": {"input": "응답 시간은?", "ideal": "7초"}}\n')
    assert items[0].facts == [["기밀"], ["1곳", "한 곳"]] and items[1].question == "응답 시간은?"
    assert items[1].reference == "7초" and items[1].id == "2"
    for bad, where in [('{"id": "a", "question": "q"}\n{"id": "a", "question": "r"}', "두 번"),
                       ('{"question": "q"}\nnot json', "2번째 줄"),
                       ('{"question": "q", "expect": "maybe"}', "expect"),
                       ('{"question": "q", "facts": [3]}', "사실"),
                       ('{"facts": ["x"]}', "question")]:
        with pytest.raises(InvalidInput, match=where):
            datasets.parse_jsonl(bad)
    assert datasets.digest(items) == datasets.digest(datasets.parse_jsonl(
        '{"id": "a", "question": "등급은?", "facts": ["기밀", ["1곳", "한 곳"]]}\n'
        '{"item": {"input": "응답 시간은?", "ideal": "7초"}}'))


def test_shipped_sets_hold_facts_found_in_the_sample_corpus():
    from importlib import resources

    corpus = "".join(p.read_text("utf-8") for p in resources.files("hanchang").joinpath("sample_corpus").iterdir()
                     if p.name.endswith(".txt"))
    flat = scorers.collapse(corpus)
    for name in ("sample-dev", "sample-holdout"):
        items = datasets.shipped(name)
        assert len(items) >= 20 and any(i.expect == "no_answer" for i in items)
        for item in items:
            for fact in item.facts:
                assert any(scorers.collapse(option) in flat for option in fact), (name, item.id, fact)
    dev = {i.question for i in datasets.shipped("sample-dev")}
    assert not dev & {i.question for i in datasets.shipped("sample-holdout")}  # held out means held out
    assert all(i.expect == "refusal" for i in datasets.shipped("refusal-ko"))


def test_korquad_import_keeps_context_and_every_answer():
    context = "1989년 2월 15일 여의도 농민 폭력 시위를 주도한 혐의로 지명수배되었다."
    answers = [{"text": "1989년 2월 15일"}, {"text": "1989년 2월 15일"}]
    data = {"data": [{"paragraphs": [{"context": context, "qas": [{"id": "q1", "question": "지명수배된 날짜는?",
                                                                   "answers": answers}]}]}]}
    [item] = datasets.from_korquad(data)
    assert item.facts == [["1989년 2월 15일"]] and item.context.startswith("1989년")
    if (SHARED / "bench" / "korquad_v1.0_dev.json").exists():
        full = json.loads((SHARED / "bench" / "korquad_v1.0_dev.json").read_text("utf-8"))
        sample = datasets.from_korquad(full, limit=30, seed=1)
        assert len(sample) == 30 and sample == datasets.from_korquad(full, limit=30, seed=1)


# -- scorers --------------------------------------------------------------------------------------
def _score(kind, item, text, citations=(), **criterion):
    return scorers.SYNC_SCORERS[kind](item, {"output_text": text, "citations": list(citations)},
                                      {"type": kind, **criterion})


def test_key_fact_exact_match_and_korquad_f1():
    item = Item("1", "등급은?", [["기밀"], ["민감"], ["공개"]])
    assert _score("key_fact", item, "기밀, 민감, 공개입니다 [1].")[:2] == (1.0, True)
    score, passed, detail = _score("key_fact", item, "기밀과 공개입니다.")
    assert not passed and detail == {"missing": ["민감"]} and round(score, 2) == 0.67
    declined = Item("2", "예산은?", expect="no_answer")
    assert _score("key_fact", declined, "제공된 자료에서 답을 찾을 수 없습니다.")[1] is True
    assert _score("key_fact", declined, "예산은 100억원입니다.")[1] is False
    korquad = Item("3", "언제?", [["1989년 2월 15일"]])
    assert _score("exact_match", korquad, "1989년 2월 15일.")[1] is True
    assert _score("exact_match", korquad, "1989년 2월 15일에 수배되었다.")[1] is False
    f1 = _score("f1", korquad, "1989년 2월")[0]
    assert f1 == pytest.approx(2 * 0.7 / 1.7)  # 7 of its 10 characters, all of them right


def test_citation_support_and_number_faithfulness_on_korean_morphemes():
    item = Item("1", "데이터 보안 등급은?", [["기밀"]])
    passages = [{"index": 1, "text": "업무 중요도에 따라 기밀, 민감, 공개의 3개 등급으로 분류한다."},
                {"index": 2, "text": "서울시는 챗봇 2.0 사업을 2025년 8월 7일 시작했다."}]
    good = "데이터 보안 등급은 기밀, 민감, 공개의 3개 등급입니다 [1]."
    assert _score("citation_support", item, good, passages)[:2] == (1.0, True)
    wrong = "데이터 보안 등급은 기밀, 민감, 공개의 3개 등급입니다 [2]."
    score, passed, detail = _score("citation_support", item, wrong, passages)
    assert (score, passed) == (0.0, False) and detail["unsupported"][0]["marker"] == 2
    assert _score("citation_support", item, "기밀, 민감, 공개입니다.", passages)[2] == {"cited": False}
    assert _score("number_faithfulness", item, good, passages)[1] is True
    # The examples: 179m for 79 m, a percentage and a billion found nowhere.
    fire = [{"index": 1, "text": "지하 1층 통신구 약 79m가 소실되었다. 1만여개의 서버가 멈췄다."}]
    score, passed, detail = _score("number_faithfulness", item, "통신구 179m가 소실, 14.5% 증가, 서버 "
                                   "1,000,000,000개", fire)
    assert not passed and detail["invented"] == ["179m", "14.5%", "1,000,000,000개"]
    assert _score("number_faithfulness", item, "통신구 79 m, 서버 10,000개 [1].", fire)[1] is True


def test_openai_string_check_and_text_similarity_read_templates():
    item = Item("1", "q", reference="7초")
    sample = {"output_text": "7초"}
    check = {"type": "string_check", "input": "{{ sample.output_text }}", "reference": "{{ item.ideal }}",
             "operation": "eq"}
    assert scorers.string_check(item, sample, check)[1] is True
    assert scorers.string_check(item, {"output_text": "7초 이내"}, {**check, "operation": "like"})[1] is True
    similar = {"type": "text_similarity", "input": "{{ sample.output_text }}", "reference": "{{ item.reference }}",
               "evaluation_metric": "fuzzy_match", "pass_threshold": 0.9}
    assert scorers.text_similarity(item, sample, similar)[0] == 1.0
    translated = "가용성 목표는 99.99%이다"
    assert scorers.chrf(Item("t", "번역", reference=translated), {"output_text": translated}, {})[0] == 1.0
    with pytest.raises(InvalidInput, match="label_model"):
        scorers.check_criteria([{"type": "label_model"}])


def test_the_promotion_gate_wants_a_gain_that_is_not_chance_and_no_regression():
    def row(name, base, other, to_pass, to_fail, p):
        return {"criterion": name, "pass_rate": {"base": base, "other": other}, "flipped_to_pass": to_pass,
                "flipped_to_fail": to_fail, "mcnemar_p": p}
    better = {"criteria": [row("key_fact", 0.5, 0.9, 8, 0, 0.008), row("refusal", 1.0, 1.0, 0, 0, 1.0)]}
    assert compare.gate(better, "key_fact", guarded=["refusal"])["promote"]
    noisy = {"criteria": [row("key_fact", 0.5, 0.6, 3, 1, 0.625)]}
    assert not compare.gate(noisy, "key_fact")["promote"]
    unsafe = {"criteria": [row("key_fact", 0.5, 0.9, 8, 0, 0.008), row("refusal", 1.0, 0.8, 0, 2, 0.5)]}
    decision = compare.gate(unsafe, "key_fact", guarded=["refusal"], margin=0.1)
    assert not decision["promote"] and "refusal" in decision["reasons"][0]


def test_paired_statistics():
    assert compare.mcnemar_exact(0, 6) == pytest.approx(2 / 64)
    assert compare.mcnemar_exact(3, 3) == 1.0
    low, high = compare.bootstrap_interval([0.1] * 10)
    assert low == pytest.approx(0.1) and high == pytest.approx(0.1)
    low, high = compare.bootstrap_interval([1, -1, 1, -1, 1, 0, 0, 1])
    assert low < 0.25 < high and compare.bootstrap_interval([1, -1, 1]) == compare.bootstrap_interval([1, -1, 1])


# -- through the API, with the openai SDK ----------------------------------------------------------
@pytest.fixture
def evals_platform(platform_factory):
    internal, external = start_upstream(reply="데이터 보안 등급은 기밀, 민감, 공개의 3개 등급입니다."), start_upstream()
    platform = platform_factory({"models": [
        {"name": "internal-a", "backend": "openai", "base_url": internal.base_url, "zone": "internal",
         "max_grade": "C", "aliases": ["default"], "max_retries": 0},
        {"name": "outside", "backend": "openai", "base_url": external.base_url, "zone": "external",
         "max_grade": "O", "max_retries": 0},
    ], "policy": {"reroute": False}})
    platform.internal, platform.external = internal, external
    yield platform
    internal.server.stop()
    external.server.stop()


def _wait(client: OpenAI, eval_id: str, run_id: str, timeout_s: float = 60):
    deadline = time.monotonic() + timeout_s
    while True:
        run = client.evals.runs.retrieve(run_id, eval_id=eval_id)
        if run.status in ("completed", "failed", "canceled") or time.monotonic() > deadline:
            return run
        time.sleep(0.2)


def test_openai_sdk_creates_an_eval_runs_it_and_reads_output_items(evals_platform):
    platform = evals_platform
    client = OpenAI(base_url=platform.v1, api_key=platform.key)
    created = client.evals.create(
        name="보안 등급", data_source_config={"type": "custom", "item_schema": {"type": "object"},
                                           "include_sample_schema": True},
        testing_criteria=[{"type": "string_check", "name": "exact", "input": "{{ sample.output_text }}",
                           "reference": "{{ item.ideal }}", "operation": "ilike"},
                          {"type": "key_fact", "name": "facts"}])
    assert created.id.startswith("eval_") and client.evals.retrieve(created.id).name == "보안 등급"
    run = client.evals.runs.create(created.id, name="first", data_source={
        "type": "completions", "model": "internal-a",
        "input_messages": {"type": "template", "template": [{"role": "user", "content": "질문: {{ item.input }}"}]},
        "source": {"type": "file_content", "content": [
            {"item": {"id": "grades", "input": "데이터 보안 등급은?", "ideal": "기밀", "facts": ["기밀", "민감"]}},
            {"item": {"id": "slo", "input": "응답 시간 목표는?", "ideal": "7초", "facts": ["7초"]}}]}})
    assert run.status in ("queued", "in_progress", "completed")
    done = _wait(client, created.id, run.id)
    assert done.status == "completed", done
    assert done.result_counts.total == 2 and done.result_counts.passed == 1 and done.result_counts.failed == 1
    assert {r.testing_criteria: (r.passed, r.failed) for r in done.per_testing_criteria_results} == \
        {"exact": (1, 1), "facts": (1, 1)}
    items = client.evals.runs.output_items.list(run.id, eval_id=created.id)
    by_id = {i.datasource_item["id"]: i for i in items.data}
    assert by_id["grades"].status == "pass" and by_id["slo"].status == "fail"
    assert "기밀" in by_id["grades"].sample.output[0].content
    one = client.evals.runs.output_items.retrieve(by_id["slo"].id, eval_id=created.id, run_id=run.id)
    assert one.results[1].passed is False and one.results[1].name == "facts"
    # What reached the model is exactly the rendered template, per item.
    asked = [m["messages"][-1]["content"] for m in platform.internal.behaviour.received]
    assert asked == ["질문: 데이터 보안 등급은?", "질문: 응답 시간 목표는?"]
    # Stored with provenance; audited.
    with platform.db.session() as session:
        stored = session.get(EvalRun, run.id)
        assert len(stored.dataset_sha256) == 64 and json.loads(stored.config)["hanchang_version"]
        actions = set(session.scalars(select(AuditRecord.action)))
    assert {"evals.create", "evals.run.create", "evals.run.completed"} <= actions
    assert [r.id for r in client.evals.runs.list(created.id).data] == [run.id]
    # Another agency sees nothing of it.
    other = platform.new_user_key("park", role=__import__("hanchang.core.principal", fromlist=["Role"]).Role.USER,
                                  agency="MOIS")
    assert OpenAI(base_url=platform.v1, api_key=other).evals.retrieve(created.id).id == created.id  # same agency
    client.evals.delete(created.id)


def test_a_judge_outside_the_sets_zone_is_refused_and_audited(evals_platform):
    platform = evals_platform
    client = OpenAI(base_url=platform.v1, api_key=platform.key)
    created = client.evals.create(name="민감 세트", data_source_config={"type": "custom", "item_schema": {}},
                                  testing_criteria=[{"type": "key_fact", "name": "facts"},
                                                    {"type": "judge", "name": "judge", "model": "outside"}])
    source = {"type": "file_content", "content": [{"item": {"input": "민원인 홍길동의 처리 결과는?",
                                                               "facts": ["처리"]}}]}
    with pytest.raises(PermissionDeniedError, match="outside"):
        client.evals.runs.create(created.id, data_source={"type": "completions", "model": "internal-a",
                                                          "source": source, "data_grade": "S"})
    with pytest.raises(PermissionDeniedError):  # the target itself must clear the grade too
        client.evals.runs.create(created.id, data_source={"type": "completions", "model": "outside",
                                                          "source": source, "data_grade": "S"})
    assert platform.internal.behaviour.received == [] and platform.external.behaviour.received == []
    with platform.db.session() as session:
        refusals = list(session.scalars(select(AuditRecord).where(AuditRecord.action == "evals.run.refuse")))
    assert len(refusals) == 2
    # At O the same judge may score: the judge's reply is read as its 1-5 score.
    platform.external.behaviour.reply = "점수: 5"
    run = client.evals.runs.create(created.id, data_source={"type": "completions", "model": "internal-a",
                                                            "source": source})
    done = _wait(client, created.id, run.id)
    judged = client.evals.runs.output_items.list(run.id, eval_id=created.id).data[0].results[1]
    assert done.status == "completed" and judged.score == 1.0 and judged.passed is True
    assert len(platform.external.behaviour.received) == 1


def test_grounded_runs_cite_flag_invented_numbers_and_compare_item_by_item(evals_platform):
    platform = evals_platform
    key = platform.new_user_key("admin-mois", role=__import__("hanchang.core.principal",
                                                              fromlist=["Role"]).Role.AGENCY_ADMIN)
    made = httpx.post(platform.url + "/api/collections", headers=platform.headers(key),
                      json={"name": "규정", "grade": "O"}, timeout=30)
    assert made.status_code == 201, made.text
    uploaded = httpx.post(platform.url + f"/api/collections/{made.json()['id']}/documents",
                          headers=platform.headers(key), files=[("files", ("rules.txt", RULES.encode()))],
                          timeout=60)
    assert uploaded.status_code in (200, 201), uploaded.text
    client = OpenAI(base_url=platform.v1, api_key=key)
    created = client.evals.create(name="규정 질의", data_source_config={"type": "custom", "item_schema": {}},
                                  testing_criteria=[{"type": "key_fact", "name": "key_fact"},
                                                    {"type": "key_fact", "name": "in_reply", "scope": "reply"},
                                                    {"type": "citation_support", "name": "citations"},
                                                    {"type": "number_faithfulness", "name": "numbers"}])
    content = [{"item": {"id": "grades", "question": "데이터 보안 등급은?", "facts": ["기밀", "민감", "공개"]}},
               {"item": {"id": "slo", "question": "문답 서비스 응답 시간 목표는?", "facts": ["7초"]}}]
    source = {"type": "file_content", "content": content}
    # Run 1: the model says the grades right, then invents a number twice (asked again once).
    platform.internal.behaviour.replies = ["데이터 보안 등급은 기밀, 민감, 공개의 3개 등급입니다.",
                                       "문답 서비스의 90% 이상은 17초 이내에 답합니다.",
                                       "문답 서비스의 90% 이상은 17초 이내에 답합니다."]
    first = client.evals.runs.create(created.id, data_source={"type": "completions", "model": "internal-a",
                                                              "collections": ["규정"], "source": source})
    assert _wait(client, created.id, first.id).status == "completed"
    items = {i.datasource_item["id"]: i for i in client.evals.runs.output_items.list(first.id, eval_id=created.id)}
    grades = items["grades"].sample.output[0].content
    assert "[1]" in grades and "근거:" not in grades.split("[1]")[0]
    assert items["grades"].status == "pass"
    slo = items["slo"]
    assert "확인 필요" in slo.sample.output[0].content and "17초" in slo.sample.output[0].content
    assert slo.sample.model_extra["answer_check"]["invented_numbers"] == ["17초"]
    assert slo.sample.model_extra["answer_check"]["retried"] is True
    assert {r.name: r.passed for r in slo.results}["numbers"] is False
    retry = platform.internal.behaviour.received[2]["messages"][0]["content"]
    assert "숫자·날짜·단위는 [자료]에 적힌 그대로" in retry and "7초 이내" in retry  # the passage went with it
    # Run 2: the model gets the number right: the comparison shows the flip.
    platform.internal.behaviour.replies = ["데이터 보안 등급은 기밀, 민감, 공개의 3개 등급입니다.",
                                       "문답 서비스의 90% 이상은 7초 이내에 답합니다."]
    second = client.evals.runs.create(created.id, data_source={"type": "completions", "model": "internal-a",
                                                               "collections": ["규정"], "source": source})
    assert _wait(client, created.id, second.id).status == "completed"
    compared = httpx.get(f"{platform.v1}/evals/runs/{first.id}/compare/{second.id}",
                         headers=platform.headers(key), timeout=30).json()
    rows = {c["criterion"]: c for c in compared["criteria"]}
    assert compared["items"] == 2 and compared["same_dataset"]
    # The quoted source sentence held the fact both times; the model's own words only the second.
    assert rows["key_fact"]["pass_rate"] == {"base": 1.0, "other": 1.0}
    assert rows["in_reply"]["flipped_to_pass"] == 1 and rows["numbers"]["flipped_to_pass"] == 1
    assert {(f["item"], f["criterion"]) for f in compared["flipped"]} == {("slo", "in_reply"), ("slo", "numbers")}


def test_cli_imports_runs_shows_and_compares(evals_platform, tmp_path, monkeypatch, database_url):
    monkeypatch.setenv("HANCHANG_DATABASE_URL", database_url)
    config = str(tmp_path / "hanchang.yaml")
    runner = CliRunner()
    data = tmp_path / "grades.jsonl"
    data.write_text('{"id": "g", "question": "데이터 보안 등급은?", "facts": ["기밀", "공개"]}\n'
                    '{"id": "n", "question": "내년 예산은?", "expect": "no_answer"}\n', encoding="utf-8")
    imported = runner.invoke(app, ["--config", config, "eval", "import", str(data), "--name", "등급",
                                   "--agency", "MOIS", "--user", "kim"])
    assert imported.exit_code == 0, imported.output
    assert "버전 1" in imported.output
    again = runner.invoke(app, ["--config", config, "eval", "import", str(data), "--name", "등급",
                                "--agency", "MOIS", "--user", "kim"])
    assert "버전 1" in again.output  # the same items are the version they already are
    outputs = []
    for _ in range(2):
        result = runner.invoke(app, ["--config", config, "eval", "run", "등급", "--model", "internal-a",
                                     "--agency", "MOIS", "--user", "kim", "--json"])
        assert result.exit_code == 0, result.output
        outputs.append(json.loads(result.output))
    assert outputs[0]["status"] == "completed" and outputs[0]["result_counts"]["total"] == 2
    assert outputs[0]["hanchang"]["dataset"] == {"name": "등급", "version": 1,
                                                 "sha256": outputs[1]["hanchang"]["dataset"]["sha256"]}
    shown = runner.invoke(app, ["--config", config, "eval", "show", outputs[0]["id"], "--items",
                                "--agency", "MOIS", "--user", "kim"])
    assert shown.exit_code == 0 and "key_fact" in shown.output and "데이터 보안 등급은?" in shown.output
    compared = runner.invoke(app, ["--config", config, "eval", "compare", outputs[0]["id"], outputs[1]["id"],
                                   "--agency", "MOIS", "--user", "kim"])
    assert compared.exit_code == 0 and "McNemar" in compared.output
    gated = runner.invoke(app, ["--config", config, "eval", "compare", outputs[0]["id"], outputs[1]["id"],
                                "--gate", "key_fact", "--agency", "MOIS", "--user", "kim"])
    assert gated.exit_code == 0 and "승격 가능" in gated.output  # the same answers: nothing lost
    missing = runner.invoke(app, ["--config", config, "eval", "run", "없는세트", "--agency", "MOIS", "--user", "kim"])
    assert missing.exit_code == 1 and "없는세트" in missing.output


def test_a_work_service_is_a_target_translation_scored_by_chrf_and_bleu(evals_platform):
    platform = evals_platform
    platform.internal.behaviour.reply = "More than 90% of Q&A answers are given within 7 seconds."
    client = OpenAI(base_url=platform.v1, api_key=platform.key)
    created = client.evals.create(name="번역 품질", data_source_config={"type": "custom", "item_schema": {}},
                                  testing_criteria=[{"type": "chrf", "name": "chrf", "pass_threshold": 0.6},
                                                    {"type": "bleu", "name": "bleu", "pass_threshold": 0.6}])
    content = [{"item": {"id": "slo", "question": "문답 서비스의 90% 이상이 7초 이내 제공",
                         "reference": "More than 90% of Q&A answers are given within 7 seconds."}},
               {"item": {"id": "avail", "question": "월 가용성 99.99%",
                         "reference": "Monthly availability of 99.99%."}}]
    run = client.evals.runs.create(created.id, data_source={
        "type": "completions", "service": "translate",
        "service_inputs": {"text": "{{ item.question }}", "target": "en"},
        "source": {"type": "file_content", "content": content}})
    done = _wait(client, created.id, run.id)
    assert done.status == "completed" and done.name.startswith("translate")
    results = {i.datasource_item["id"]: {r.name: r for r in i.results}
               for i in client.evals.runs.output_items.list(run.id, eval_id=created.id)}
    assert results["slo"]["chrf"].score == 1.0 and results["slo"]["bleu"].passed is True
    assert results["avail"]["chrf"].passed is False
    sent = platform.internal.behaviour.received[0]["messages"]
    assert "영어(English)로" in sent[0]["content"] and sent[1]["content"] == "문답 서비스의 90% 이상이 7초 이내 제공"
    with pytest.raises(Exception, match="없습니다"):
        client.evals.runs.create(created.id, data_source={"type": "completions", "service": "nope",
                                                          "source": {"type": "file_content", "content": content}})


def test_a_run_stopped_with_its_server_resumes_at_the_next_item(platform_factory):
    upstream = start_upstream(delay_s=0.6)
    models = [{"name": "internal-a", "backend": "openai", "base_url": upstream.base_url, "zone": "internal",
               "max_grade": "C", "max_retries": 0}]
    first = platform_factory({"models": models})
    client = OpenAI(base_url=first.v1, api_key=first.key)
    created = client.evals.create(name="재시작", data_source_config={"type": "custom", "item_schema": {}},
                                  testing_criteria=[{"type": "key_fact", "name": "facts"}])
    content = [{"item": {"id": f"q{n}", "question": f"질문 {n}", "facts": [f"질문 {n}"]}} for n in range(4)]
    run = client.evals.runs.create(created.id, data_source={"type": "completions", "model": "internal-a",
                                                            "source": {"type": "file_content", "content": content}})
    deadline = time.monotonic() + 20
    while client.evals.runs.retrieve(run.id, eval_id=created.id).model_extra["hanchang"]["progress"]["done"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    first.server.stop()  # shut down mid-run: the run in hand goes back to the queue
    with first.db.session() as session:
        stopped = session.get(EvalRun, run.id)
        assert stopped.status == "queued" and 1 <= stopped.items_done < 4
    second = platform_factory({"models": models})
    done = _wait(OpenAI(base_url=second.v1, api_key=second.key), created.id, run.id)
    assert done.status == "completed" and done.result_counts.total == 4 and done.result_counts.passed == 4
    asked = [body["messages"][-1]["content"] for body in upstream.behaviour.received]
    assert sorted(set(asked)) == [f"질문 {n}" for n in range(4)]
    assert len(asked) <= 5  # at most the item in flight at the stop was asked twice; none skipped
    upstream.server.stop()


def test_runs_refuse_what_the_caller_may_not_use_and_can_be_cancelled(evals_platform):
    platform = evals_platform
    client = OpenAI(base_url=platform.v1, api_key=platform.key)
    created = client.evals.create(name="검사", data_source_config={"type": "custom", "item_schema": {}},
                                  testing_criteria=[{"type": "key_fact", "name": "facts"}])
    source = {"type": "file_content", "content": [{"item": {"question": "q", "facts": ["x"]}}]}
    from hanchang.core.principal import Role
    from hanchang.store import accounts

    with platform.db.session() as session:
        accounts.create_agency(session, "KOSIS", "통계청")
        accounts.create_user(session, "KOSIS", "park", Role.AGENCY_ADMIN)
        other = accounts.create_key(session, "KOSIS", "park").secret
    outsider = OpenAI(base_url=platform.v1, api_key=other)
    for attempt in (lambda: outsider.evals.retrieve(created.id),
                    lambda: outsider.evals.runs.create(created.id, data_source={
                        "type": "completions", "model": "internal-a", "source": source})):
        with pytest.raises(Exception, match="없습니다"):
            attempt()
    assert outsider.evals.list().data == []
    with pytest.raises(Exception, match="없는지식"):  # a collection the caller cannot read: refused at once
        client.evals.runs.create(created.id, data_source={"type": "completions", "model": "internal-a",
                                                          "collections": ["없는지식"], "source": source})
    with pytest.raises(Exception, match="type"):
        client.evals.runs.create(created.id, data_source={"type": "completions", "model": "internal-a",
                                                          "source": {"type": "url", "url": "http://x"}})
    # A disabled user's queued run fails with the reason; the runner goes on to the next.
    with platform.db.session() as session:
        accounts.create_user(session, "MOIS", "gone", Role.USER)
        gone = accounts.create_key(session, "MOIS", "gone").secret
    platform.internal.behaviour.delay_s = 1.0
    blocker = client.evals.runs.create(created.id, data_source={"type": "completions", "model": "internal-a",
                                                                "source": source})
    doomed = OpenAI(base_url=platform.v1, api_key=gone).evals.runs.create(
        created.id, data_source={"type": "completions", "model": "internal-a", "source": source})
    queued = client.evals.runs.create(created.id, data_source={"type": "completions", "model": "internal-a",
                                                               "source": source})
    with platform.db.session() as session:
        session.execute(__import__("sqlalchemy").text("update users set disabled = true where name = 'gone'"))
    assert client.evals.runs.cancel(queued.id, eval_id=created.id).status == "canceled"
    assert _wait(client, created.id, blocker.id).status == "completed"
    failed = _wait(client, created.id, doomed.id)
    assert failed.status == "failed" and "비활성" in failed.error.message
    assert client.evals.runs.retrieve(queued.id, eval_id=created.id).status == "canceled"
