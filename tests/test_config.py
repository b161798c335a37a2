"""A bad configuration names the file, the key and the problem; the server refuses to start."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import write_config
from hanchang.config import ConfigError, load_settings
from hanchang.core.grades import Grade


def test_defaults_give_the_embedded_model(tmp_path):
    settings = load_settings()
    (spec,) = settings.model_specs()
    assert spec.backend == "llamacpp" and spec.max_grade is Grade.CLASSIFIED
    assert spec.path == str(tmp_path / "home" / "models" / "qwen2.5-coder-0.5b-instruct.gguf")
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'home' / 'hanchang.db'}"


def test_yaml_then_env_override(tmp_path, monkeypatch):
    cfg = write_config(tmp_path / "c.yaml", {"limits": {"per_key": {"requests_per_minute": 7}}})
    assert load_settings(cfg).limits.per_key.requests_per_minute == 7
    assert load_settings(cfg).limits.per_key.tokens_per_minute == 200_000  # default kept
    monkeypatch.setenv("HANCHANG_LIMITS__PER_KEY__REQUESTS_PER_MINUTE", "9")
    assert load_settings(cfg).limits.per_key.requests_per_minute == 9
    monkeypatch.setenv("HANCHANG_CONFIG", str(cfg))
    monkeypatch.setenv("HANCHANG_PORT", "9999")
    assert load_settings().port == 9999


@pytest.mark.parametrize(
    ("data", "key", "words"),
    [
        ({"models": [{"name": "x", "backend": "openai", "zone": "intranet", "max_grade": "C",
                      "base_url": "http://h/v1"}]}, "models[0].zone", "'internal' or 'external'"),
        ({"models": [{"name": "x", "backend": "openai", "zone": "internal", "max_grade": "Q",
                      "base_url": "http://h/v1"}]}, "models[0].max_grade", "O (공개)"),
        ({"models": [{"name": "x", "backend": "openai", "zone": "internal", "max_grade": "C"}]},
         "models[0]", "needs base_url"),
        ({"models": [{"name": "x", "backend": "openai", "zone": "external", "max_grade": "S",
                      "base_url": "http://h/v1"}]}, "models[0]", "may only clear grade O"),
        ({"models": [{"name": "x", "backend": "llamacpp", "zone": "internal", "max_grade": "C",
                      "fallbacks": ["ghost"]}]}, "", "'ghost', which is not configured"),
        ({"limits": {"per_kye": {}}}, "limits.per_kye", "Extra inputs"),
        ({"limits": {"per_key": {"requests_per_minute": -1}}},
         "limits.per_key.requests_per_minute", "greater than or equal to 0"),
        ({"modles": []}, "modles", "Extra inputs"),
        ({"knowledge": {"index": "postgres"}}, "", "needs a PostgreSQL database_url"),
        ({"knowledge": {"index": "opensearch"}}, "knowledge.index", "'auto', 'embedded' or 'postgres'"),
    ],
)
def test_errors_name_file_key_and_problem(tmp_path, data, key, words):
    cfg = write_config(tmp_path / "bad.yaml", data)
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    message = str(info.value)
    assert str(cfg) in message and key in message and words in message, message


def test_yaml_syntax_error_names_the_line(tmp_path):
    cfg = tmp_path / "broken.yaml"
    cfg.write_text("models:\n  - name: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken.yaml: line 3"):
        load_settings(cfg)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.yaml")


def test_serve_refuses_to_start_on_bad_config(tmp_path):
    cfg = write_config(tmp_path / "bad.yaml", {"models": [{"name": "x", "backend": "vllm"}]})
    result = subprocess.run([sys.executable, "-m", "hanchang", "serve", "--config", str(cfg)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "bad.yaml" in result.stderr and "models[0].backend" in result.stderr
