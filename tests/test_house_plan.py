"""The house plan (docs/adr/0009): which package may import which, and each rule in one place.

These read the source, so a change that crosses a boundary fails here with the file and line.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "hanchang"


def _modules() -> list[tuple[Path, str]]:
    return [(path, path.relative_to(SRC).as_posix()) for path in sorted(SRC.rglob("*.py"))]


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import in a file, type-only ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, node.module)] + [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def _package(relative: str) -> str:
    first = relative.split("/")[0]
    return first[:-3] if first.endswith(".py") else first


# Who may import whom: dependencies point inward (doors -> assist -> domains -> core).
MAY_NOT_IMPORT = {
    "core": {"api", "web", "http", "server", "cli", "assist", "knowledge", "gateway", "guard", "audit", "store",
             "config", "training"},
    "guard": {"api", "web", "http", "server", "cli", "assist", "knowledge", "gateway", "training"},
    "knowledge": {"api", "web", "http", "server", "cli", "assist", "gateway", "training"},
    "gateway": {"api", "web", "http", "server", "cli", "assist", "knowledge", "training"},
    "assist": {"api", "web", "http", "server", "cli", "ops", "evals", "training"},
    "evals": {"api", "web", "http", "server", "cli", "ops", "training"},
    "training": {"api", "web", "http", "server", "cli", "ops"},  # beside evals: its gate uses the harness
    "ops": {"api", "web", "http", "server", "cli", "assist", "training"},
    "audit": {"api", "web", "http", "server", "cli", "assist", "ops", "knowledge", "gateway", "guard", "training"},
    "http": {"api", "web", "server", "cli"},
    "api": {"web", "server", "cli"},
    "web": {"api", "server", "cli"},
}


@pytest.mark.parametrize("package", sorted(MAY_NOT_IMPORT))
def test_dependencies_point_inward(package):
    crossings = []
    for path, relative in _modules():
        if _package(relative) != package:
            continue
        for line, module in _imports(path):
            parts = module.split(".")
            if parts[0] == "hanchang" and len(parts) > 1 and parts[1] in MAY_NOT_IMPORT[package]:
                crossings.append(f"{relative}:{line} imports {module}")
    assert not crossings, "\n".join(crossings)


def test_only_the_gateway_reaches_backends():
    outside = [f"{relative}:{line} imports {module}" for path, relative in _modules()
               if not relative.startswith("gateway/")
               for line, module in _imports(path) if module.startswith("hanchang.gateway.backends")]
    assert not outside, "\n".join(outside)


def test_development_tools_are_not_in_the_product():
    assert not (SRC / "devtools").exists()
    uses = [f"{relative}:{line}" for path, relative in _modules() for line, module in _imports(path)
            if module.startswith("hanchang_devtools")]
    assert not uses, uses


def _definitions(name: str) -> list[str]:
    return [relative for path, relative in _modules()
            if re.search(rf"^(def|class) {name}\b", path.read_text(encoding="utf-8"), re.MULTILINE)]


@pytest.mark.parametrize(("rule", "home"), [
    ("passage_grade", "core/grades.py"), ("effective_grade", "core/policy.py"),
    ("pii_mode_for", "core/pii_modes.py"), ("can", "core/permissions.py"),
    ("message_text", "core/text.py"), ("in_force", "core/versions.py"), ("HanchangError", "core/errors.py"),
])
def test_each_rule_is_written_once_in_core(rule, home):
    assert _definitions(rule) == [home]


ROLE_TEST = re.compile(r"\b(principal|caller|p)\.role\s+(is|in|not in|==|!=)\s"
                       r"|\bis\s+(not\s+)?Role\.(AGENCY_ADMIN|PLATFORM_ADMIN|AUDITOR)\b|\.is_admin\b")


def test_role_rules_live_in_the_permission_table():
    """Who may do what is decided in core/permissions.py; elsewhere code asks `can`/`require`.
    (Creating a principal or a user with a role is not a rule.)"""
    found = []
    for path, relative in _modules():
        if relative in ("core/permissions.py", "core/principal.py"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if ROLE_TEST.search(line) and "Principal(" not in line and "create_user(" not in line:
                found.append(f"{relative}:{number}: {line.strip()}")
    assert not found, "\n".join(found)


def test_user_facing_errors_share_one_base():
    from hanchang.assist.connectors import ActionError
    from hanchang.assist.services.base import ServiceInputError
    from hanchang.assist.templates import TemplateError
    from hanchang.core.errors import HanchangError
    from hanchang.gateway.errors import GatewayError, RateLimited
    from hanchang.http.errors import AuthError, CsrfError
    from hanchang.knowledge.collections import CollectionNotFound, KnowledgeError

    for family in (GatewayError, KnowledgeError, CollectionNotFound, ActionError, TemplateError,
                   ServiceInputError, AuthError, CsrfError):
        assert issubclass(family, HanchangError), family
    limited = RateLimited("agency budget used up")
    assert limited.message.startswith("사용 한도에 도달했습니다") and "(agency budget used up)" in limited.message
    assert limited.status == 429 and limited.error_type == "rate_limit_error"


def test_one_stream_lifecycle():
    """Both doors format the answer use case's events; neither runs the gateway's stream itself."""
    for door in ("api/openai_routes.py", "web/routes.py"):
        text = (SRC / door).read_text(encoding="utf-8")
        for gateway_step in ("start_stream", "finish_stream", "record_unanswered", "CancelScope"):
            assert gateway_step not in text, f"{door} runs {gateway_step} itself"
