"""Extension points (hanchang/plugins.py) through real entry points of an installed distribution.

The plugin below is installed the way pip installs one — a module beside a `.dist-info` with
`entry_points.txt` — on a path given to a fresh interpreter, so the registries load it at import
as they would in production. Its recognizer then guards requests like a built-in one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

PLUGIN = '''
import re
from typing import Any

from hanchang.assist.connectors import ConnectorFormat, Operation
from hanchang.assist.services.base import Field, Service, ServiceResult
from hanchang.guard.recognizers import Recognizer
from hanchang.knowledge.parsers.base import Block, BlockKind, ParsedDocument, ParserPlugin


def _parse_memo(path, name=None):
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return ParsedDocument(lines[0], [Block(BlockKind.PARAGRAPH, line) for line in lines], "memo")


MEMO = ParserPlugin((".memo",), _parse_memo)
STAFF_NUMBER = Recognizer("STAFF_NUMBER", "사번", re.compile(r"\\bMOIS-\\d{6}\\b"), 0.9)


async def _run(ctx, inputs):
    return ServiceResult(inputs["text"].upper())


SHOUT = Service("shout", "크게 말하기", "Shout", "입력을 대문자로 바꿉니다.", (Field("text", "text", "글"),), _run)


def _catalogue_operations(spec: dict[str, Any]) -> dict[str, Operation]:
    return {name: Operation(name, "GET", f"/{name}", name, (), (), (), ()) for name in spec["catalogue"]}


CATALOGUE = ConnectorFormat(lambda spec: "catalogue" in spec, _catalogue_operations)


def echo_backend(spec):
    raise RuntimeError("never built in this test")
'''

ENTRY_POINTS = '''
[hanchang.parsers]
memo = agency_plugin:MEMO

[hanchang.recognizers]
staff_number = agency_plugin:STAFF_NUMBER

[hanchang.services]
shout = agency_plugin:SHOUT

[hanchang.connectors]
catalogue = agency_plugin:CATALOGUE

[hanchang.backends]
echo = agency_plugin:echo_backend
'''

CHECK = '''
import asyncio, json, sys
from pathlib import Path

from hanchang.assist import connectors
from hanchang.assist.services import SERVICES
from hanchang.assist.services.custom import catalogue
from hanchang.config import ModelConfig
from hanchang.core.pii_modes import PiiMode
from hanchang.guard.request_guard import guard_request
from hanchang.knowledge.parsers import parse, supported_extensions

memo = Path(sys.argv[1])
document = parse(memo)
guarded = guard_request({"messages": [{"role": "user", "content": "담당자 사번 MOIS-123456 확인"}]},
                        PiiMode.MASK, "external-model")
ModelConfig(name="echo-model", backend="echo", zone="internal", max_grade="O")
try:
    ModelConfig(name="bad", backend="no-such-kind", zone="internal", max_grade="O")
    unknown_backend = "accepted"
except ValueError as exc:
    unknown_backend = str(exc)
print(json.dumps({
    "memo_supported": ".memo" in supported_extensions(), "parser": document.parser, "title": document.title,
    "guarded": guarded.body["messages"][-1]["content"], "counts": guarded.counts,
    "services": sorted(catalogue(SERVICES, [])),
    "operations": sorted(connectors.operations({"catalogue": ["rooms", "staff"]})),
    "unknown_backend": unknown_backend,
}, ensure_ascii=False))
'''


def _install(site: Path) -> None:
    (site / "agency_plugin.py").write_text(textwrap.dedent(PLUGIN), encoding="utf-8")
    info = site / "agency_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: agency-plugin\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(ENTRY_POINTS, encoding="utf-8")


def _run(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", CHECK, *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_a_plugin_adds_a_format_a_pii_type_a_service_a_connector_format_and_a_backend(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    _install(site)
    memo = tmp_path / "회의.memo"
    memo.write_text("주간 회의 메모\n안건: 예산\n", encoding="utf-8")
    done = _run(site, str(memo))
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["memo_supported"] and seen["parser"] == "memo" and seen["title"] == "주간 회의 메모"
    assert "MOIS-123456" not in seen["guarded"] and "[사번1]" in seen["guarded"]
    assert seen["counts"] == {"STAFF_NUMBER": 1}
    assert "shout" in seen["services"] and "qa" in seen["services"]
    assert seen["operations"] == ["rooms", "staff"]
    assert "unknown backend 'no-such-kind'" in seen["unknown_backend"] and "echo" in seen["unknown_backend"]


def test_a_plugin_may_not_take_a_built_in_name(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    _install(site)
    entry_points = site / "agency_plugin-0.1.dist-info" / "entry_points.txt"
    entry_points.write_text(ENTRY_POINTS.replace("memo = agency_plugin:MEMO", "pdf = agency_plugin:MEMO"),
                            encoding="utf-8")
    memo = tmp_path / "x.memo"
    memo.write_text("x\n", encoding="utf-8")
    done = _run(site, str(memo))
    assert done.returncode != 0
    assert "plugin pdf in hanchang.parsers takes a name already in use" in done.stderr
