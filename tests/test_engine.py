"""The embedded model's engine process: what it offers through Hanchang, and what happens when it
crashes or hangs (a real engine with the packaged 0.5B model, killed with real signals)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import httpx
import numpy as np
import openai
import pytest

from hanchang.gateway.engine.supervisor import HEALTH_EVERY_S

pytest.importorskip("llama_cpp", reason="install the 'local' extra to run the embedded model")

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
COUNTING = [{"role": "user", "content": "1부터 300까지의 숫자를 쉼표로 구분해 모두 적어 주세요."}]


def engine_pid(platform, name: str = "local") -> int:
    status = json.loads((platform.settings.home / "run" / f"engine-{name}.json").read_text())
    assert status["pid"], status
    return int(status["pid"])


def wait_ready(platform, restarts: int, timeout_s: float = 90) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        report = httpx.get(platform.url + "/readyz", timeout=10).json()
        local = next(m for m in report["models"] if m["name"] == "local")
        if local["state"] == "ready" and local.get("restarts", 0) >= restarts:
            return local
        time.sleep(0.5)
    raise AssertionError(f"engine not back: {report}")


def test_engine_build_is_portable():
    """No AVX-512 or AMX in the installed llama.cpp: it must run on any x86-64 host with AVX2."""
    probe = "import llama_cpp; print(llama_cpp.llama_print_system_info().decode())"
    info = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "AVX2 = 1" in info
    assert "AVX512" not in info and "AMX" not in info, info
    if shutil.which("objdump"):
        import llama_cpp

        library = os.path.join(os.path.dirname(llama_cpp.__file__), "lib", "libggml-cpu.so")
        disassembly = subprocess.run(["objdump", "-d", library], capture_output=True, text=True).stdout
        assert "%zmm" not in disassembly and "ldtilecfg" not in disassembly


@pytest.mark.slow
def test_tools_json_schema_stop_and_token_limits_reach_the_engine(local):
    client = openai.OpenAI(base_url=local.v1, api_key=local.key, max_retries=0, timeout=120)
    ask = [{"role": "user", "content": "What is the weather in Seoul?"}]

    forced = client.chat.completions.create(model="local", messages=ask, tools=[WEATHER],
                                            tool_choice="required", temperature=0)
    call = forced.choices[0].message.tool_calls[0]
    assert forced.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and "city" in json.loads(call.function.arguments)

    streamed = list(client.chat.completions.create(
        model="local", messages=ask, tools=[WEATHER], temperature=0, stream=True,
        tool_choice={"type": "function", "function": {"name": "get_weather"}}))
    deltas = [tc for c in streamed if c.choices for tc in (c.choices[0].delta.tool_calls or ())]
    assert deltas and deltas[0].function.name == "get_weather"
    assert json.loads("".join(d.function.arguments for d in deltas))["city"]
    assert [c.choices[0].finish_reason for c in streamed if c.choices][-1] == "tool_calls"

    # "auto": this model writes the call as fenced JSON; it still comes back as a tool call.
    auto = client.chat.completions.create(model="local", messages=ask, tools=[WEATHER], temperature=0)
    assert auto.choices[0].message.tool_calls[0].function.name == "get_weather"

    schema = {"type": "object", "properties": {"population": {"type": "integer"}, "city": {"type": "string"}},
              "required": ["population", "city"], "additionalProperties": False}
    shaped = client.chat.completions.create(
        model="local", temperature=0, max_tokens=60,
        messages=[{"role": "user", "content": "서울의 인구를 알려 주세요."}],
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema}})
    value = json.loads(shaped.choices[0].message.content)
    assert set(value) == {"population", "city"} and isinstance(value["population"], int)

    counting = [{"role": "user", "content": "1부터 10까지 쉼표로 구분해 적어 주세요."}]
    stopped = client.chat.completions.create(model="local", messages=counting, stop=["5"], temperature=0)
    assert "4" in stopped.choices[0].message.content and "5" not in stopped.choices[0].message.content
    short = client.chat.completions.create(model="local", messages=counting, max_completion_tokens=3,
                                           temperature=0)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens <= 3


@pytest.mark.slow
def test_several_choices_and_the_other_doors_on_the_engine(local):
    """n > 1 runs one generation per choice in the engine (plain and streamed); the legacy
    completion and the Responses API answer from it too."""
    client = openai.OpenAI(base_url=local.v1, api_key=local.key, max_retries=0, timeout=180)
    ask = [{"role": "user", "content": "Name one colour."}]
    several = client.chat.completions.create(model="local", messages=ask, n=2, max_tokens=8, temperature=1.0, seed=7)
    assert [c.index for c in several.choices] == [0, 1] and all(c.message.content for c in several.choices)
    assert several.usage.completion_tokens >= 2
    streamed = list(client.chat.completions.create(model="local", messages=ask, n=2, max_tokens=8, stream=True,
                                                   stream_options={"include_usage": True}))
    texts = {0: "", 1: ""}
    for chunk in streamed:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    assert texts[0] and texts[1]
    assert sorted(c.index for chunk in streamed for c in chunk.choices if c.finish_reason) == [0, 1]
    assert streamed[-1].usage.completion_tokens >= 2
    legacy = client.completions.create(model="local", prompt="Say hello.", max_tokens=8)
    assert legacy.choices[0].text and legacy.object == "text_completion"
    response = client.responses.create(model="local", input="Say hello.", max_output_tokens=8)
    assert response.output_text and response.usage.output_tokens <= 8


def test_embeddings_in_float_and_base64(local):
    body = {"model": "local-embed", "input": ["주민등록", "개인정보"]}
    as_float = httpx.post(local.v1 + "/embeddings", headers=local.headers(), json=body, timeout=60).json()
    as_base64 = httpx.post(local.v1 + "/embeddings", headers=local.headers(), timeout=60,
                           json={**body, "encoding_format": "base64"}).json()
    for plain, packed in zip(as_float["data"], as_base64["data"], strict=True):
        decoded = np.frombuffer(base64.b64decode(packed["embedding"]), dtype="<f4")
        assert decoded.shape == (896,) and np.allclose(decoded, plain["embedding"], atol=1e-5)
    # The Node SDK asks for base64 by default; the Python SDK decodes it the same way.
    client = openai.OpenAI(base_url=local.v1, api_key=local.key, max_retries=0, timeout=60)
    sdk = client.embeddings.create(model="local-embed", input="주민등록")
    single = httpx.post(local.v1 + "/embeddings", headers=local.headers(), timeout=60,
                        json={"model": "local-embed", "input": "주민등록"}).json()
    assert np.allclose(sdk.data[0].embedding, single["data"][0]["embedding"], atol=1e-5)

    ids = httpx.post(local.v1 + "/embeddings", headers=local.headers(), timeout=60,
                     json={"model": "local-embed", "input": [[1, 2, 3]]})
    assert ids.status_code == 400 and "check_embedding_ctx_length" in ids.json()["error"]["message"]


@pytest.mark.slow
def test_killing_the_engine_mid_stream_ends_that_answer_only(local):
    body = {"model": "local", "stream": True, "messages": COUNTING, "max_tokens": 600, "temperature": 0}
    with httpx.stream("POST", local.v1 + "/chat/completions", headers=local.headers(), json=body,
                      timeout=120) as response:
        assert response.status_code == 200
        events = (line[6:] for line in response.iter_lines() if line.startswith("data: "))
        for seen, _ in enumerate(events):
            if seen == 5:
                break
        os.kill(engine_pid(local), signal.SIGKILL)
        rest = list(events)
    assert "[DONE]" not in rest
    error = json.loads(rest[-1])["error"]
    assert error["code"] == "model_restarting" and "다시 시작" in error["message"]

    # The platform itself never stopped.
    assert httpx.get(local.url + "/healthz", timeout=5).status_code == 200
    assert httpx.get(local.v1 + "/models", headers=local.headers(), timeout=5).status_code == 200

    question = {"model": "local", "max_tokens": 20, "temperature": 0,
                "messages": [{"role": "user", "content": "대한민국의 수도는 어디입니까?"}]}
    answered, refusals = None, []
    deadline = time.monotonic() + 90
    while answered is None and time.monotonic() < deadline:
        reply = httpx.post(local.v1 + "/chat/completions", headers=local.headers(), json=question, timeout=120)
        if reply.status_code == 503:
            refusals.append(reply)
            time.sleep(0.5)
        else:
            answered = reply
    assert answered is not None and answered.status_code == 200, answered and answered.text
    for refusal in refusals:  # while it restarts: a clear, retryable 503
        assert refusal.json()["error"]["code"] == "model_restarting"
        assert int(refusal.headers["retry-after"]) >= 1
    assert wait_ready(local, restarts=1)["restarts"] == 1
    killed = local.usage_rows(at_least=2)[0]
    assert killed.status == 503 and killed.error_code == "model_restarting"


@pytest.mark.slow
def test_a_hung_engine_is_killed_and_replaced(local):
    client = openai.OpenAI(base_url=local.v1, api_key=local.key, max_retries=0, timeout=120)
    ask = [{"role": "user", "content": "안녕하세요"}]
    client.chat.completions.create(model="local", messages=ask, max_tokens=5)
    frozen = engine_pid(local)
    os.kill(frozen, signal.SIGSTOP)  # alive, but answers nothing: a hang
    try:
        wait_ready(local, restarts=1, timeout_s=60 + 10 * HEALTH_EVERY_S)
    finally:
        os.kill(frozen, signal.SIGCONT) if _alive(frozen) else None
    assert not _alive(frozen)
    assert client.chat.completions.create(model="local", messages=ask, max_tokens=5).choices[0].message.content
    problem = httpx.get(local.url + "/readyz", timeout=10).json()["models"][0]["last_problem"]
    assert "health check" in problem


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a killed child stays a zombie until its parent reaps it
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_an_engine_that_cannot_load_its_model_is_a_clear_503(platform_factory, tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + os.urandom(2048))
    platform = platform_factory({"models": [
        {"name": "local", "backend": "llamacpp", "path": str(junk), "zone": "internal", "max_grade": "C"}]})
    reply = httpx.post(platform.v1 + "/chat/completions", headers=platform.headers(), timeout=120,
                       json={"model": "local", "messages": [{"role": "user", "content": "x"}]})
    assert reply.status_code == 503 and reply.headers["retry-after"]
    error = reply.json()["error"]
    assert error["code"] == "model_restarting" and "while loading" in error["message"]
    assert str(tmp_path) not in error["message"]  # no paths for API users; the log has them
    log = (platform.settings.home / "logs" / "engine-local.log").read_text()
    assert "junk.gguf" in log
