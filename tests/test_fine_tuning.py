"""Fine-tuning end to end on a tiny model of the embedded model's architecture (Qwen2, random
weights, the real tokenizer): a dataset uploaded with the openai SDK, a job run by the server's
training worker in its own process (PEFT LoRA + TRL), the adapter written as GGUF and served by
the embedded engine, the eval gate, rollback; the grade and agency rules around all of it; a
teacher proved by an upstream recording never to see a passage it is not cleared for."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from openai import NotFoundError, OpenAI
from sqlalchemy import select

from conftest import admins_of_two_agencies
from hanchang.core.errors import InvalidInput
from hanchang.core.principal import Role
from hanchang.store import accounts
from hanchang.store.tables import AuditRecord
from hanchang.store.training_tables import FineTuningJob, TrainedModel
from hanchang.training import datasets, jobs

FACT = "한창은 범정부 공통 AI 플랫폼입니다."


def _needs_training_libraries():
    if os.environ.get("CI"):
        import torch  # noqa: F401  CI installs the train extra: a missing library fails there
    else:
        pytest.importorskip("torch", reason="the train extra (pip install 'hanchang[train]') is not installed")


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory, model_path) -> Path:
    """A 2-block Qwen2 with random weights and the embedded model's tokenizer, as GGUF."""
    _needs_training_libraries()
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from hanchang.gateway import local_model
    from hanchang.training import gguf_files

    if not model_path.exists():
        local_model.assemble(model_path)
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=151936, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         tie_word_embeddings=True, rms_norm_eps=1e-6)
    path = tmp_path_factory.mktemp("tiny") / "tiny-qwen2.gguf"
    gguf_files.write_model(Qwen2ForCausalLM(config), model_path, path)
    return path


def _tiny(path: Path, max_grade: str = "C", name: str = "local") -> dict:
    return {"name": name, "backend": "llamacpp", "path": str(path), "zone": "internal", "max_grade": max_grade,
            "context_window": 1024, "threads": 2, "aliases": ["tiny"] if name == "local" else []}


def _launch(platform_factory, tiny_gguf, upstream, run_jobs: bool = True):
    platform = platform_factory({"models": [
        _tiny(tiny_gguf),
        _tiny(tiny_gguf, "O", "open-only"),
        {"name": "ext", "backend": "openai", "base_url": upstream.base_url, "zone": "external", "max_grade": "O"},
    ], "training": {"threads": 2, "run_jobs": run_jobs, "gate_max_tokens": 16}})
    platform.keys = admins_of_two_agencies(platform)
    platform.upstream = upstream
    return platform


@pytest.fixture
def trainable(platform_factory, tiny_gguf, upstream):
    return _launch(platform_factory, tiny_gguf, upstream)


@pytest.fixture
def queue_only(platform_factory, tiny_gguf, upstream):
    """A platform that queues jobs but runs none (the API hosts of a deployment with a training host)."""
    return _launch(platform_factory, tiny_gguf, upstream, run_jobs=False)


def _client(platform, key) -> OpenAI:
    return OpenAI(base_url=platform.v1, api_key=key, max_retries=0, timeout=120)


def _examples(n: int) -> bytes:
    lines = [{"messages": [{"role": "system", "content": "짧게 답하세요."},
                           {"role": "user", "content": f"질문 {i}: 한창은 무엇입니까? 담당자 전화 010-2345-6789"},
                           {"role": "assistant", "content": FACT}]} for i in range(n)]
    return "\n".join(json.dumps(line, ensure_ascii=False) for line in lines).encode()


def _wait(client: OpenAI, job_id: str, timeout_s: float = 300):
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in ("succeeded", "failed", "cancelled") or time.monotonic() > deadline:
            return job
        time.sleep(1)


# -- datasets, without training ------------------------------------------------------------------
def test_bad_training_files_say_which_lines_and_nothing_is_stored():
    bad = b'{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n' \
          b'not json\n{"messages": [{"role": "user", "content": "q"}]}\n' \
          b'{"messages": [{"role": "robot", "content": "q"}, {"role": "assistant", "content": "a"}]}\n'
    with pytest.raises(InvalidInput) as caught:
        datasets.parse_jsonl(bad)
    assert "line 2: not JSON" in caught.value.message and "line 3" in caught.value.message \
        and "line 4: message 1: role" in caught.value.message
    with pytest.raises(InvalidInput, match="예시가 없습니다"):
        datasets.parse_jsonl(b"\n\n")
    with pytest.raises(InvalidInput, match="UTF-8"):
        datasets.parse_jsonl("질문".encode("euc-kr"))
    with pytest.raises(InvalidInput, match="나눌 수 없습니다"):
        datasets.split([{"messages": []}], 0.1, 0)
    cleaned, replaced = datasets.pseudonymise(json.loads(f"[{_examples(1).decode()}]"))
    assert replaced == 1 and "010-2345-6789" not in json.dumps(cleaned, ensure_ascii=False)
    assert "[전화번호1]" in cleaned[0]["messages"][1]["content"]
    parts = datasets.split([{"messages": [{"role": "user", "content": str(i)}]} for i in range(20)], 0.1, 3)
    assert len(parts.holdout) == 2 and parts == datasets.split(
        [{"messages": [{"role": "user", "content": str(i)}]} for i in range(20)], 0.1, 3)


def test_files_api_is_openais_shape_graded_sealed_and_agency_bound(trainable):
    mois, kosis = _client(trainable, trainable.keys["mois"]), _client(trainable, trainable.keys["kosis"])
    uploaded = mois.files.create(file=("faq.jsonl", _examples(10)), purpose="fine-tune")
    assert uploaded.purpose == "fine-tune" and uploaded.status == "processed" and uploaded.id.startswith("file-")
    extra = uploaded.model_extra["hanchang"]
    assert extra["grade"] == "S" and extra["train"] == 9 and extra["holdout"] == 1 and extra["pii_replaced"] == 10
    assert [f.id for f in mois.files.list(purpose="fine-tune").data] == [uploaded.id]
    with pytest.raises(NotFoundError):
        kosis.files.retrieve(uploaded.id)
    with pytest.raises(NotFoundError):  # another agency cannot train on it either
        kosis.fine_tuning.jobs.create(model="local", training_file=uploaded.id)
    # S examples are sealed at rest: neither the answer nor the question is in the database in clear.
    with trainable.db.session() as session:
        stored = session.execute(select(datasets.TrainingDataset.examples)).scalar_one()
    assert FACT not in stored and "한창은 무엇" not in stored and stored.startswith("hc1:")
    bad = httpx.post(trainable.v1 + "/files", headers=trainable.headers(trainable.keys["mois"]),
                     files={"file": ("x.jsonl", b'{"messages": 1}\n')}, data={"purpose": "fine-tune"})
    assert bad.status_code == 422 and "line 1" in bad.json()["error"]["message"]
    plain = trainable.new_key()  # a user who is not an admin does not build datasets
    refused = httpx.post(trainable.v1 + "/files", headers=trainable.headers(plain),
                         files={"file": ("x.jsonl", _examples(3))}, data={"purpose": "fine-tune"})
    assert refused.status_code == 403
    # A job on a model that cannot be trained, or whose clearance is below the data's, is refused.
    for model, code in (("ext", "model_not_trainable"), ("open-only", "invalid_request")):
        response = httpx.post(trainable.v1 + "/fine_tuning/jobs", headers=trainable.headers(trainable.keys["mois"]),
                              json={"model": model, "training_file": uploaded.id})
        assert response.status_code in (400, 422) and response.json()["error"]["code"] == code, response.text
    mois.files.delete(uploaded.id)
    with pytest.raises(NotFoundError):
        mois.files.retrieve(uploaded.id)


def test_two_workers_never_claim_the_same_job_and_a_stale_job_is_taken_again(queue_only):
    trainable = queue_only
    from datetime import timedelta

    from hanchang.store.tables import utcnow

    mois = _client(trainable, trainable.keys["mois"])
    uploaded = mois.files.create(file=("faq.jsonl", _examples(4)), purpose="fine-tune")
    job = mois.fine_tuning.jobs.create(model="local", training_file=uploaded.id)
    assert job.status == "queued"
    def claim(worker: str) -> str | None:
        with trainable.db.session() as session:
            found = jobs.claim(session, worker)
            return found.id if found else None
    with ThreadPoolExecutor(4) as pool:  # four workers at once: one job, one taker
        taken = list(pool.map(claim, ["a:1", "b:2", "c:3", "d:4"]))
    assert taken.count(job.id) == 1, taken
    with trainable.db.session() as session:  # its worker stopped beating: another takes it
        row = session.get(FineTuningJob, job.id)
        row.status, row.heartbeat_at = "running", utcnow() - timedelta(minutes=10)
    with trainable.db.session() as session:
        again = jobs.claim(session, "c:3")
        assert again is not None and again.id == job.id and again.attempts >= 1
        jobs.cancel(session, _admin(trainable, session), again)


def _admin(platform, session):
    from hanchang.cli.common import acting_user

    return acting_user(session, "MOIS", "admin-mois")


# -- the adapter file --------------------------------------------------------------------------------
def test_the_gguf_adapter_gives_llama_cpp_the_logits_peft_gives(tiny_gguf, tmp_path):
    """The conversion is right: llama.cpp with the written adapter computes what PEFT computes."""
    import numpy as np
    import torch
    from llama_cpp import Llama
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict
    from transformers import AutoModelForCausalLM

    from hanchang.training import gguf_files, trainer

    model = AutoModelForCausalLM.from_pretrained(str(tiny_gguf.parent), gguf_file=tiny_gguf.name, dtype=torch.float32)
    torch.manual_seed(1)  # random A and B (not B = 0), so the adapter changes every projection
    peft = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=trainer.TARGET_MODULES,
                                            task_type="CAUSAL_LM", init_lora_weights=False))
    adapter = tmp_path / "adapter.gguf"
    arch, blocks = gguf_files.architecture(tiny_gguf)
    assert (arch, blocks) == ("qwen2", 2)
    gguf_files.write_lora(get_peft_model_state_dict(peft), 16, arch, blocks, adapter)
    base = Llama(model_path=str(tiny_gguf), n_ctx=128, logits_all=True, verbose=False)
    tuned = Llama(model_path=str(tiny_gguf), lora_path=str(adapter), n_ctx=128, logits_all=True, verbose=False)
    tokens = base.tokenize(FACT.encode(), add_bos=False)
    base.eval(tokens)
    tuned.eval(tokens)
    with torch.no_grad():
        with_adapter = peft(torch.tensor([tokens])).logits[0].numpy()
        with peft.disable_adapter():
            without = peft(torch.tensor([tokens])).logits[0].numpy()
    ours_base = np.array(base.scores[:len(tokens)])
    ours_tuned = np.array(tuned.scores[:len(tokens)])
    effect = np.abs(with_adapter - without).max()
    assert effect > 0.1  # the adapter matters ...
    assert np.abs(ours_base - without).max() < 1e-3 and np.abs(ours_tuned - with_adapter).max() < 1e-2 * effect
    assert np.corrcoef((ours_tuned - ours_base).ravel(), (with_adapter - without).ravel())[0, 1] > 0.9999
    with pytest.raises(ValueError, match="unexpected tensor"):  # only LoRA tensors are exported
        gguf_files.lora_tensors({"model.embed_tokens.weight": torch.zeros(2, 2)}, arch, blocks)


# -- the whole path, on the tiny model --------------------------------------------------------------
@pytest.mark.timeout(900)
def test_dataset_to_job_to_adapter_served_gated_and_rolled_back(trainable):
    mois, kosis = _client(trainable, trainable.keys["mois"]), _client(trainable, trainable.keys["kosis"])
    uploaded = mois.files.create(file=("faq.jsonl", _examples(12)), purpose="fine-tune",
                                 extra_body={"grade": "S"})
    job = mois.fine_tuning.jobs.create(model="local", training_file=uploaded.id, seed=7,
                                       hyperparameters={"n_epochs": 10, "batch_size": 4,
                                                        "learning_rate_multiplier": 10})
    with pytest.raises(NotFoundError):
        kosis.fine_tuning.jobs.retrieve(job.id)
    done = _wait(mois, job.id)
    events = [e.message for e in mois.fine_tuning.jobs.list_events(job.id, limit=100).data]
    assert done.status == "succeeded", (done.error, events)
    model_id = done.fine_tuned_model
    assert model_id.startswith("local:ft-mois-") and done.trained_tokens > 0
    assert done.hyperparameters.n_epochs == 10 and done.hyperparameters.batch_size == 4
    metrics = [e for e in mois.fine_tuning.jobs.list_events(job.id, limit=100).data if e.type == "metrics"]
    losses = [e.data["train_loss"] for e in reversed(metrics) if "train_loss" in e.data]
    assert len(losses) == 30 and losses[-1] < losses[0]  # 11 examples, batch 4: 3 steps an epoch; it learns
    assert any("valid_loss" in e.data for e in metrics)
    checkpoints = mois.fine_tuning.jobs.checkpoints.list(job.id).data
    assert [c.step_number for c in checkpoints][:2] == [30, 27] and "valid_loss" in checkpoints[0].metrics.model_dump()
    manifest = done.model_extra["hanchang"]["manifest"]
    assert manifest["training_file"]["sha256"] == uploaded.model_extra["hanchang"]["sha256"]
    assert manifest["seed"] == 7 and manifest["libraries"]["peft"] != "missing" and manifest["device"] == "cpu"
    adapter = trainable.settings.home / manifest["adapter"]["path"]
    assert adapter.is_file() and manifest["adapter"]["sha256"]

    # Awaiting evaluation: not served, not even to its owner; never to anyone else.
    def ask(client, model):
        return client.chat.completions.create(model=model, temperature=0, max_tokens=8,
                                              messages=[{"role": "user", "content": "한창은 무엇입니까?"}])
    for client in (mois, kosis):
        with pytest.raises(NotFoundError):
            ask(client, model_id)
    # The gate scores it against its base: the tiny model learns nothing of use, so it is rejected.
    gate = httpx.post(f"{trainable.url}/api/training/models/{model_id}/gate",
                      headers=trainable.headers(trainable.keys["mois"]), timeout=600)
    assert gate.status_code == 200, gate.text
    verdict = gate.json()
    assert [s["set"] for s in verdict["sets"]] == ["held-out", "refusal-ko", "sample-holdout"]
    assert verdict["promote"] is False and all(s["base_run"] and s["model_run"] for s in verdict["sets"])
    assert not any("no results" in reason for s in verdict["sets"] for reason in s["reasons"]), verdict
    with trainable.db.session() as session:
        row = session.get(TrainedModel, model_id)
        assert row.status == "rejected" and row.grade == "S"
    promote = f"{trainable.url}/api/training/models/{model_id}/promote"
    assert httpx.post(promote, headers=trainable.headers(trainable.keys["kosis"]),
                      json={"reason": "x"}).status_code == 404  # not theirs: not found
    assert httpx.post(promote, headers=trainable.headers(trainable.keys["mois"]), json={}).status_code == 422
    promoted = httpx.post(promote, headers=trainable.headers(trainable.keys["mois"]),
                          json={"reason": "시험 목적의 수동 승인"})
    assert promoted.status_code == 200 and promoted.json()["status"] == "served"
    # Served now: its owner gets answers from the adapter (not the base's), carrying grade S.
    base, tuned = ask(mois, "local"), ask(mois, model_id)
    assert tuned.model == model_id and tuned.choices[0].message.content != base.choices[0].message.content
    assert ask(mois, "local").choices[0].message.content == base.choices[0].message.content  # adapter off again
    smuggled = mois.chat.completions.create(  # a caller cannot name an adapter file: the base answers
        model="local", temperature=0, max_tokens=8, messages=[{"role": "user", "content": "한창은 무엇입니까?"}],
        extra_body={"hanchang_adapter": {"path": str(adapter), "scale": 1.0}})
    assert smuggled.choices[0].message.content == base.choices[0].message.content
    assert model_id in [m.id for m in mois.models.list().data]
    assert model_id not in [m.id for m in kosis.models.list().data]
    with pytest.raises(NotFoundError):
        ask(kosis, model_id)
    rows = trainable.usage_rows(at_least=2)
    assert any(r.model_used == model_id and r.data_grade == "S" for r in rows), \
        [(r.model_used, r.data_grade) for r in rows]
    rolled = httpx.post(f"{trainable.url}/api/training/models/{model_id}/rollback",
                        headers=trainable.headers(trainable.keys["mois"]))
    assert rolled.status_code == 200 and rolled.json()["status"] == "retired"
    with pytest.raises(NotFoundError):
        ask(mois, model_id)
    with trainable.db.session() as session:
        actions = set(session.scalars(select(AuditRecord.action).where(AuditRecord.action.like("training.%"))))
    assert {"training.dataset.create", "training.job.create", "training.job.succeeded", "training.model.gate",
            "training.model.promote_override", "training.model.rollback"} <= actions

    # The manifest reproduces the run: the same file, seed and settings give the same loss curve.
    again = mois.fine_tuning.jobs.create(model="local", training_file=uploaded.id, seed=7,
                                         hyperparameters=manifest["hyperparameters"],
                                         metadata={"reproduces": job.id})
    redone = _wait(mois, again.id)
    assert redone.status == "succeeded"
    reproduction = redone.model_extra["hanchang"]["manifest"]["reproduction"]
    assert reproduction["within_tolerance"] and reproduction["steps_compared"] == 30, reproduction


# -- scale-out: vLLM's LoRA API -----------------------------------------------------------------------
def test_on_scale_out_vllm_loads_the_adapter_by_name_and_serves_it(platform_factory, upstream, tmp_path):
    """Adapters trained on the embedded model are served by a vLLM server (`serve_on`): it is
    asked to load each one once (`/v1/load_lora_adapter`, PEFT format from the shared folder),
    then requests name the adapter as their model. The recording upstream shows both shapes."""
    platform = platform_factory({"models": [
        {"name": "local", "backend": "llamacpp", "path": str(tmp_path / "base.gguf"), "zone": "internal",
         "max_grade": "C"},
        {"name": "vllm-qwen", "backend": "openai", "base_url": upstream.base_url, "zone": "internal",
         "max_grade": "C", "lora_root": "/srv/hanchang/adapters"},
    ], "training": {"serve_on": {"local": "vllm-qwen"}, "run_jobs": False}})
    with platform.db.session() as session:
        accounts.create_agency(session, "KOSIS", "통계청")
        mois_agency = accounts.get_agency(session, "MOIS").id
        session.add(TrainedModel(id="local:ft-mois-20261206-7", agency_id=mois_agency, job_id=None,
                                 base_model="local", grade="S", status="served", lora_scale=1.0,
                                 adapter_path="models/adapters/local_ft-mois-20261206-7.gguf", adapter_sha256="0" * 64))
        accounts.create_user(session, "KOSIS", "lee", Role.USER)
        kosis = accounts.create_key(session, "KOSIS", "lee").secret
    mois = _client(platform, platform.key)
    for _ in range(2):
        answer = mois.chat.completions.create(model="local:ft-mois-20261206-7",
                                              messages=[{"role": "user", "content": "안녕하세요"}])
        assert answer.model == "local:ft-mois-20261206-7"
    assert upstream.behaviour.lora_loads == [{"lora_name": "local:ft-mois-20261206-7",
                                              "lora_path": "/srv/hanchang/adapters/local_ft-mois-20261206-7"}]
    chats = [body for body in upstream.behaviour.received if "messages" in body]
    assert [body["model"] for body in chats] == ["local:ft-mois-20261206-7"] * 2
    with pytest.raises(NotFoundError):
        _client(platform, kosis).chat.completions.create(model="local:ft-mois-20261206-7",
                                                         messages=[{"role": "user", "content": "안녕"}])
    assert len([body for body in upstream.behaviour.received if "messages" in body]) == 2  # reached no model


# -- datasets from a collection (a teacher) and from the window's reviewed answers --------------------
RULE = ("제9조(출입통제) 보안구역 출입카드는 청색카드로 발급하며 분실 시 즉시 보안담당관에게 신고한다. "
        "출입기록은 3년간 보관하고, 외부인은 방문증을 받은 뒤 직원과 함께 출입한다. 출입카드를 다른 사람에게 "
        "빌려주어서는 안 되며, 위반하면 출입 권한을 정지한다.")


@pytest.fixture
def teaching(platform_factory, upstreams):
    internal, external = upstreams
    platform = platform_factory({"models": [
        {"name": "int", "backend": "openai", "base_url": internal.base_url, "zone": "internal", "max_grade": "C"},
        {"name": "ext", "backend": "openai", "base_url": external.base_url, "zone": "external", "max_grade": "O"},
    ], "training": {"run_jobs": False}})
    with platform.db.session() as session:
        accounts.create_user(session, "MOIS", "admin-mois", Role.AGENCY_ADMIN, "pw-admin-123456")
        platform.admin = accounts.create_key(session, "MOIS", "admin-mois").secret
    platform.internal, platform.external = internal, external
    return platform


def _api(platform, method, path, **kwargs):
    return httpx.request(method, platform.url + path, headers=platform.headers(platform.admin), timeout=60, **kwargs)


def test_a_teacher_writes_grounded_pairs_only_when_cleared_for_the_collections_grade(teaching):
    cid = _api(teaching, "POST", "/api/collections", json={"name": "보안규정", "grade": "S"}).json()["id"]
    assert _api(teaching, "POST", f"/api/collections/{cid}/documents",
                files=[("files", ("출입통제.txt", RULE.encode()))]).status_code in (200, 202)
    teaching.external.behaviour.received.clear()
    refused = _api(teaching, "POST", "/api/training/datasets",
                   json={"name": "qa", "source": "collection", "collection": str(cid), "teacher": "ext"})
    assert refused.status_code == 403 and "교사 모델" in refused.json()["error"]["message"]
    assert teaching.external.behaviour.received == []  # the passage never left for the external model
    teaching.internal.behaviour.reply = json.dumps([
        {"question": "보안구역 출입카드는 무슨 색입니까?", "answer": "보안구역 출입카드는 청색카드로 발급합니다."},
        {"question": "점심 메뉴는?", "answer": "오늘 점심은 김치찌개와 계란말이입니다."}], ensure_ascii=False)
    built = _api(teaching, "POST", "/api/training/datasets",
                 json={"name": "qa", "source": "collection", "collection": str(cid), "teacher": "int",
                       "holdout": 0})
    assert built.status_code == 201, built.text
    found = built.json()
    assert found["hanchang"]["grade"] == "S" and found["hanchang"]["train"] == 1 and found["skipped"] == 1
    asked = [b for b in teaching.internal.behaviour.received if "messages" in b]
    assert asked and "청색카드" in asked[-1]["messages"][-1]["content"]  # the teacher read the passage
    with teaching.db.session() as session:
        row = session.scalar(select(datasets.TrainingDataset).where(datasets.TrainingDataset.file_id == found["id"]))
        parts = datasets.examples_of(session, row)
    [example] = parts.train
    assert "청색카드" in example["messages"][0]["content"] and example["messages"][1]["content"].startswith("보안구역")


def test_reviewed_answers_of_the_window_become_a_dataset_at_their_grade(teaching):
    import re

    with teaching.db.session() as session:
        accounts.create_user(session, "MOIS", "lee", Role.USER, "pw-lee-123456")
    client = httpx.Client(base_url=teaching.url, timeout=60)
    assert client.post("/auth/login", data={"agency": "MOIS", "user": "lee", "password": "pw-lee-123456"}
                       ).status_code == 303
    csrf = {"X-CSRF-Token": re.search(r'name="csrf-token" content="([^"]+)"', client.get("/").text).group(1)}
    teaching.internal.behaviour.replies = ["출장비는 실비로 정산합니다.", "모르겠습니다."]
    rated = []
    for question, rating in (("출장비는 어떻게 정산하나요?", 1), ("연차는 며칠인가요?", -1)):
        conversation = client.post("/api/conversations", headers=csrf).json()["id"]
        turn = client.post(f"/api/conversations/{conversation}/messages", headers=csrf,
                           json={"content": question, "model": "int"})
        message_id = json.loads(turn.text.split("event: done\ndata: ")[1].split("\n")[0])["message_id"]
        assert client.post(f"/api/messages/{message_id}/feedback", headers=csrf,
                           json={"rating": rating}).status_code == 200
        rated.append(message_id)
    too_few = _api(teaching, "POST", "/api/training/datasets", json={"name": "fb", "source": "feedback"})
    assert too_few.status_code == 422 and "나눌 수 없습니다" in too_few.json()["error"]["message"]  # 1 👍 only
    first = _api(teaching, "POST", "/api/training/datasets", json={"name": "fb", "source": "feedback", "holdout": 0})
    assert first.status_code == 201 and first.json()["hanchang"]["train"] == 1
    with teaching.db.session() as session:  # an admin corrects the 👎 answer: it becomes a target too
        from hanchang.store.tables import Feedback

        wrong = session.scalar(select(Feedback).where(Feedback.message_id == rated[1]))
        wrong.expected_answer, wrong.review_status = "연차는 근속 연수에 따라 15일부터입니다.", "resolved"
    built = _api(teaching, "POST", "/api/training/datasets", json={"name": "fb", "source": "feedback", "holdout": 0.5})
    assert built.status_code == 201
    assert built.json()["hanchang"]["version"] == 2 and built.json()["hanchang"]["source"] == "feedback"
    with teaching.db.session() as session:
        row = session.scalar(select(datasets.TrainingDataset)
                             .where(datasets.TrainingDataset.file_id == built.json()["id"]))
        parts = datasets.examples_of(session, row)
    answers = {e["messages"][1]["content"] for e in parts.train + parts.holdout}
    assert answers == {"출장비는 실비로 정산합니다.", "연차는 근속 연수에 따라 15일부터입니다."}


def _job_process(job_id: str) -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"hanchang.training.job_process" in command and job_id.encode() in command:
                return int(entry.name)
    return None


@pytest.mark.timeout(600)
def test_a_running_job_is_cancelled_between_steps_and_a_killed_one_fails_alone(trainable):
    import signal

    mois = _client(trainable, trainable.keys["mois"])
    uploaded = mois.files.create(file=("faq.jsonl", _examples(12)), purpose="fine-tune")
    long = {"n_epochs": 50, "batch_size": 1}

    def running_with_steps(job_id: str) -> None:
        deadline = time.monotonic() + 180
        while not any(e.type == "metrics" for e in mois.fine_tuning.jobs.list_events(job_id, limit=50).data):
            assert time.monotonic() < deadline, mois.fine_tuning.jobs.retrieve(job_id)
            time.sleep(0.5)

    job = mois.fine_tuning.jobs.create(model="local", training_file=uploaded.id, hyperparameters=long)
    running_with_steps(job.id)
    mois.fine_tuning.jobs.cancel(job.id)
    assert _wait(mois, job.id, 120).status == "cancelled"
    killed = mois.fine_tuning.jobs.create(model="local", training_file=uploaded.id, hyperparameters=long)
    running_with_steps(killed.id)
    os.kill(_job_process(killed.id), signal.SIGKILL)  # out of memory, an operator's kill -9 ...
    failed = _wait(mois, killed.id, 120)
    assert failed.status == "failed" and failed.error.code == "training_process_ended"
    assert "process.log" in failed.error.message
    assert mois.models.list().data  # the platform serves on
    with trainable.db.session() as session:
        assert session.scalar(select(TrainedModel.id)) is None  # neither made a model


# -- the command line ---------------------------------------------------------------------------------
def test_datasets_and_jobs_from_the_command_line(database_url, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from hanchang.cli import app

    monkeypatch.setenv("HANCHANG_DATABASE_URL", database_url)
    config = tmp_path / "hanchang.yaml"
    config.write_text(json.dumps({"models": [_tiny(tmp_path / "base.gguf")], "training": {"run_jobs": False}}))
    monkeypatch.setenv("HANCHANG_CONFIG", str(config))
    runner = CliRunner()

    def run(*args, ok=True):
        result = runner.invoke(app, [str(a) for a in args])
        assert (result.exit_code == 0) == ok, result.output
        return result.output + (result.stderr or "")

    run("agencies", "create", "MOIS", "--name", "행정안전부")
    run("users", "create", "--agency", "MOIS", "--user", "boss", "--role", "agency_admin")
    data = tmp_path / "faq.jsonl"
    data.write_bytes(_examples(10))
    made = run("datasets", "create", "faq", "--file", data, "--grade", "O", "--agency", "MOIS", "--user", "boss")
    assert "학습 9 / 검증 1" in made and "개인정보 치환 10" in made
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": []}\n')
    assert "line 1" in run("datasets", "create", "bad", "--file", bad, "--agency", "MOIS", "--user", "boss", ok=False)
    assert "faq" in run("datasets", "list", "--agency", "MOIS", "--user", "boss")
    resplit = run("datasets", "split", "faq", "--holdout", "0.2", "--agency", "MOIS", "--user", "boss")
    assert "학습 8 / 검증 2" in resplit
    queued = run("finetune", "create", "--dataset", "faq", "--model", "tiny", "--epochs", "3", "--agency", "MOIS",
                 "--user", "boss")
    job_id = queued.split()[0]
    assert job_id.startswith("ftjob-") and "queued" in queued
    assert job_id in run("finetune", "list", "--agency", "MOIS", "--user", "boss")
    assert '"n_epochs": 3' in run("finetune", "show", job_id, "--agency", "MOIS", "--user", "boss")
    assert "cancelled" in run("finetune", "cancel", job_id, "--agency", "MOIS", "--user", "boss")
    assert "Fine-tuning job queued" in run("finetune", "show", job_id, "--agency", "MOIS", "--user", "boss")
