"""The identity and usage commands of the CLI contract, on both databases."""

from __future__ import annotations

import httpx
import pytest
from typer.testing import CliRunner

from conftest import default_models
from hanchang.cli import app
from hanchang.store import accounts
from hanchang.store.db import Database


@pytest.fixture
def cli(database_url, monkeypatch):
    monkeypatch.setenv("HANCHANG_DATABASE_URL", database_url)
    runner = CliRunner()

    def run(*args, input=None, ok=True):
        result = runner.invoke(app, list(args), input=input)
        if ok:
            assert result.exit_code == 0, result.output + result.stderr
        return result

    return run


def test_agency_user_key_lifecycle(cli, database_url):
    cli("agencies", "create", "MOIS", "--name", "행정안전부")
    assert "already exists" in cli("agencies", "create", "MOIS", "--name", "x", ok=False).stderr
    cli("users", "create", "--user", "park", "--agency", "MOIS", "--role", "agency_admin",
        "--password-stdin", input="correct horse battery\n")
    result = cli("keys", "create", "--user", "park", "--agency", "MOIS")
    secret = result.stdout.strip().splitlines()[-1]
    assert secret.startswith("hc_") and "shown only now" in result.stderr

    db = Database(database_url)
    with db.session() as session:
        principal = accounts.authenticate_key(session, secret)
        user = accounts.get_user(session, "MOIS", "park")
        assert accounts.verify_password(user, "correct horse battery")
        assert not accounts.verify_password(user, "wrong password")
        stored = [k.key_hash for k in accounts.list_keys(session)]
    assert principal.user_name == "park" and principal.role.value == "agency_admin"
    assert secret not in str(stored) and len(stored[0]) == 64  # only a hash is stored

    listing = cli("keys", "list").stdout
    assert "park" in listing and "active" in listing and secret not in listing
    cli("keys", "revoke", secret.split("_")[1])
    assert "revoked" in cli("keys", "list").stdout
    with db.session() as session:
        assert accounts.authenticate_key(session, secret) is None
    db.dispose()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("keys", "create", "--user", "ghost", "--agency", "MOIS"), "user 'ghost' does not exist"),
        (("keys", "create", "--user", "x", "--agency", "NOPE"), "agency 'NOPE' does not exist"),
        (("users", "create", "--user", "x", "--agency", "NOPE"), "hanchang agencies create NOPE"),
        (("users", "create", "--user", "x", "--agency", "MOIS", "--role", "king"), "unknown role"),
        (("keys", "revoke", "999"), "no API key"),
        (("agencies", "create", "bad code!", "--name", "x"), "must be 1–32 letters"),
    ],
)
def test_clear_errors(cli, args, message):
    cli("agencies", "create", "MOIS", "--name", "행정안전부")
    result = cli(*args, ok=False)
    assert result.exit_code == 1 and message in result.stderr, result.stderr


def test_short_password_is_refused(cli):
    cli("agencies", "create", "MOIS", "--name", "행정안전부")
    result = cli("users", "create", "--user", "a", "--agency", "MOIS", "--password-stdin",
                 input="short\n", ok=False)
    assert "at least 8" in result.stderr


def test_key_cannot_raise_its_role(cli):
    cli("agencies", "create", "MOIS", "--name", "행정안전부")
    cli("users", "create", "--user", "kim", "--agency", "MOIS")
    result = cli("keys", "create", "--user", "kim", "--agency", "MOIS", "--role", "platform_admin",
                 ok=False)
    assert "cannot carry role" in result.stderr


def test_usage_table_by_agency_and_model(platform_factory, upstream, cli):
    platform = platform_factory({"models": default_models(upstream.base_url)})
    for _ in range(3):
        httpx.post(platform.v1 + "/chat/completions", headers=platform.headers(), timeout=10,
                   json={"model": "internal-a", "messages": [{"role": "user", "content": "a b"}]})
    httpx.post(platform.v1 + "/chat/completions", headers=platform.headers(), timeout=10,
               json={"model": "missing", "messages": [{"role": "user", "content": "a"}]})
    platform.usage_rows(at_least=4)
    by_agency = cli("usage", "--since", "1h", "--by", "agency").stdout
    row = next(line for line in by_agency.splitlines() if "MOIS" in line)
    assert row.split("│")[2].strip() == "4" and row.split("│")[3].strip() == "1"  # calls, errors
    by_model = cli("usage", "--since", "2020-01-01", "--by", "model").stdout
    assert "internal-a" in by_model
    assert cli("usage", "--since", "yesterday", ok=False).exit_code == 2


def test_templates_are_managed_from_the_cli(cli, tmp_path):
    cli("agencies", "create", "MOIS", "--name", "행정안전부")
    spec = tmp_path / "weekly.yaml"
    spec.write_text("key: weekly\nname_ko: 주간 업무보고\nsections: [금주 실적, 차주 계획]\n"
                    "instructions: 개조식으로 쓰세요.\n", encoding="utf-8")
    assert "created template weekly" in cli("templates", "set", "--agency", "MOIS", "--file", str(spec)).stdout
    assert "replaced template weekly" in cli("templates", "set", "--agency", "MOIS", "--file", str(spec)).stdout
    listing = cli("templates", "list", "--agency", "MOIS").stdout
    assert "주간 업무보고" in listing and "보도자료" in listing
    broken = tmp_path / "broken.yaml"
    broken.write_text("key: x\nname_ko: 이름\n", encoding="utf-8")
    failed = cli("templates", "set", "--agency", "MOIS", "--file", str(broken), ok=False)
    assert failed.exit_code == 1 and "lacks sections, instructions" in failed.stderr
    assert "does not exist" in cli("templates", "list", "--agency", "NOPE", ok=False).stderr
    cli("templates", "delete", "weekly", "--agency", "MOIS")
    assert "주간 업무보고" not in cli("templates", "list", "--agency", "MOIS").stdout
    assert "기본 서식은 지울 수 없고" in cli("templates", "delete", "report", "--agency", "MOIS", ok=False).stderr
