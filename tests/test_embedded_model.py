"""The embedded llama.cpp model, reached through Hanchang with the official openai SDK."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from hanchang.gateway import local_model
from hanchang.gateway.errors import LocalModelMissing

pytest.importorskip("llama_cpp", reason="install the 'local' extra to run the embedded model")


@pytest.mark.slow
def test_sdk_completes_streams_and_embeds_with_the_embedded_model(local, model_path):
    client = openai.OpenAI(base_url=local.v1, api_key=local.key, max_retries=0,
                           timeout=120)
    assert {m.id for m in client.models.list().data} == {"local", "local-embed"}
    question = [{"role": "system", "content": "한국어로 한 문장으로 답하세요."},
                {"role": "user", "content": "대한민국의 수도는 어디입니까?"}]
    answer = client.chat.completions.create(model="local", messages=question, max_tokens=40,
                                            temperature=0)
    assert "서울" in answer.choices[0].message.content
    assert answer.usage.prompt_tokens > 0 and answer.usage.completion_tokens > 0
    assert local_model.verify(model_path).sha256 == local_model.EXPECTED_SHA256

    chunks = list(client.chat.completions.create(model="local", messages=question, max_tokens=40,
                                                 temperature=0, stream=True,
                                                 stream_options={"include_usage": True}))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "서울" in streamed and len(chunks) > 3
    assert chunks[-1].usage.completion_tokens >= 3

    # Generation runs in a worker thread: the server keeps answering while the model works.
    with ThreadPoolExecutor(1) as pool:
        counting = [{"role": "user", "content": "1부터 200까지의 숫자를 쉼표로 구분해 모두 적어 주세요."}]
        running = pool.submit(client.chat.completions.create, model="local", messages=counting,
                              max_tokens=300, temperature=0)
        time.sleep(0.3)
        started = time.perf_counter()
        assert httpx.get(local.url + "/healthz", timeout=5).status_code == 200
        assert time.perf_counter() - started < 0.5 and not running.done()
        running.result()

    vectors = client.embeddings.create(model="local-embed", input=["주민등록", "개인정보"])
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) == 896
    rows = local.usage_rows(at_least=4)
    assert [r.status for r in rows] == [200, 200, 200, 200] and rows[1].ttft_ms is not None


def test_missing_model_file_is_a_clear_503(platform_factory, tmp_path):
    platform = platform_factory({"models": [
        {"name": "local", "backend": "llamacpp", "path": str(tmp_path / "absent.gguf"),
         "zone": "internal", "max_grade": "C"}]})
    response = httpx.post(platform.v1 + "/chat/completions", headers=platform.headers(), timeout=30,
                          json={"model": "local", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "local_model_missing" and "absent.gguf" in error["message"]


def test_corrupt_model_file_is_named_with_a_fix(tmp_path):
    broken = tmp_path / local_model.FILENAME
    broken.write_bytes(b"GGUF" + b"\0" * 1000)
    with pytest.raises(LocalModelMissing, match=r"is corrupt .* run 'hanchang model install'"):
        local_model.verify(broken)
