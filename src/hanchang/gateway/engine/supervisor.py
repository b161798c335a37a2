"""Start, watch and restart the engine process of one embedded model.

The platform never loads llama.cpp itself: a native fault (an instruction the host lacks, a
bug in a kernel) ends the child, and the supervisor starts a new one with backoff while
requests get a clear 503 with Retry-After. A child that stops making progress on a job, or
stops answering its health check, counts as hung and is killed and restarted the same way.
State goes to `HANCHANG_HOME/run/engine-<name>.json` for `hanchang models status`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Any

import aiohttp

from hanchang.core.models import ModelSpec, ModelSpeed
from hanchang.gateway import local_model
from hanchang.gateway.engine.worker import TOKEN_ENV
from hanchang.gateway.errors import LocalModelMissing, ModelRestarting

START_TIMEOUT_S = 180.0  # load + calibration; a 0.5B model takes ~3 s on 2 cores
HEALTH_EVERY_S = 2.0
HEALTH_TIMEOUT_S = 5.0
HEALTH_FAILURES_TO_KILL = 3
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 60.0
STABLE_AFTER_S = 60.0
HUNG_AFTER_S = 60.0  # up this long: the next crash starts the backoff afresh


class EngineState(str, Enum):
    IDLE = "idle"  # not started yet: starts on first use (or at serve)
    STARTING = "starting"
    READY = "ready"
    RESTARTING = "restarting"  # crashed, hung or failed to start; next attempt after a backoff
    STOPPED = "stopped"


class StartFailed(Exception):
    pass


def brief(problem: str | None) -> str | None:
    """What happened in a few words, for users: the details (log lines, paths) stay with the operator."""
    return problem.split(";")[0] if problem else problem


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


class EngineSupervisor:
    def __init__(self, spec: ModelSpec, home: Path):
        self.spec = spec
        self.home = home
        self.token = secrets.token_urlsafe(32)
        self.log_path = home / "logs" / f"engine-{spec.name}.log"
        self.status_path = home / "run" / f"engine-{spec.name}.json"
        self.state = EngineState.IDLE
        self.restarts = 0
        self.last_problem: str | None = None
        self.health: dict[str, Any] = {}
        self.port: int | None = None
        self._proc: subprocess.Popen | None = None
        self._task: asyncio.Task | None = None
        self._changed: asyncio.Event | None = None
        self._retry_at = 0.0
        self._stopping = False

    # -- what the backend asks -------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def retry_after_s(self) -> int:
        return max(1, int(self._retry_at - time.monotonic() + 0.999) + 3)

    def _restarting(self) -> ModelRestarting:
        return ModelRestarting(self.spec.name, self.retry_after_s(), brief(self.last_problem) or "a stop")

    async def ensure_ready(self) -> str:
        """The base URL of a ready engine. Starts one on first use; 503 while it restarts."""
        if self.state is EngineState.READY and self._alive():
            return self.base_url
        if self.state in (EngineState.IDLE, EngineState.STOPPED):
            self._check_installed()
            self._start_supervising()
        deadline = time.monotonic() + START_TIMEOUT_S
        while self.state is EngineState.STARTING and time.monotonic() < deadline:
            changed = self._event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=deadline - time.monotonic())
        if self.state is EngineState.READY and self._alive():
            return self.base_url
        raise self._restarting()

    async def failure(self, problem: str) -> ModelRestarting | None:
        """After a broken call: the 503 to give if the engine died or hung, else None."""
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):  # the exit may trail the reset
                await asyncio.to_thread(self._proc.wait, 1.0)
        if self._proc is not None and self._proc.poll() is None and self.state is EngineState.READY:
            return None
        self.last_problem = self.last_problem or problem
        return self._restarting()

    def speed(self) -> ModelSpeed:
        """Speeds the engine measured (at start, then on every job), from its last health check."""
        prefill, decode = self.health.get("prefill_tokens_per_s"), self.health.get("decode_tokens_per_s")
        return ModelSpeed(float(prefill) if prefill else None, float(decode) if decode else None)

    def status(self) -> dict[str, Any]:
        return {"name": self.spec.name, "kind": self.spec.kind, "state": self.state.value,
                "pid": self._proc.pid if self._proc and self._alive() else None,
                "restarts": self.restarts, "last_problem": self.last_problem,
                "log": str(self.log_path), "updated": int(time.time()),
                **{k: self.health.get(k) for k in ("prefill_tokens_per_s", "decode_tokens_per_s",
                                                   "pending", "system_info", "jobs_done")}}

    # -- life cycle ---------------------------------------------------------------------------
    def _check_installed(self) -> None:
        if importlib.util.find_spec("llama_cpp") is None:
            raise LocalModelMissing("llama-cpp-python is not installed. " + local_model.INSTALL_HINT)
        path = Path(self.spec.path or "")
        if path.name == local_model.FILENAME:
            local_model.assemble(path)  # the packaged default: built from its slices once, hash-checked
        elif not path.is_file():
            raise LocalModelMissing(
                f"Model file {path} for '{self.spec.name}' does not exist. Check 'path' in the config.")

    def _start_supervising(self) -> None:
        self._stopping = False
        self._set(EngineState.STARTING)
        self._task = asyncio.get_running_loop().create_task(self._supervise(), name=f"engine-{self.spec.name}")

    async def _supervise(self) -> None:
        backoff = BACKOFF_FIRST_S
        while self.state is not EngineState.STOPPED:
            self._set(EngineState.STARTING)
            try:
                await self._spawn()
            except StartFailed as exc:
                self.last_problem = str(exc)
            else:
                up_since = time.monotonic()
                self._set(EngineState.READY)
                self.last_problem = await self._watch()
                if self.state is EngineState.STOPPED:
                    return
                self.restarts += 1
                if time.monotonic() - up_since > STABLE_AFTER_S:
                    backoff = BACKOFF_FIRST_S
            self._retry_at = time.monotonic() + backoff
            self._set(EngineState.RESTARTING)
            self._log(f"engine stopped ({self.last_problem}); restarting in {backoff:g} s")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        threads = self.spec.extra.get("threads") or max(1, os.cpu_count() or 1)
        command = [sys.executable, "-m", "hanchang.gateway.engine", "--model", str(self.spec.path),
                   "--name", self.spec.name, "--mode", self.spec.kind,
                   "--ctx", str(self.spec.context_window), "--threads", str(threads),
                   "--request-time-limit", str(self.spec.timeout_s),
                   "--adapters", str(self.home / "models" / "adapters")]  # the only LoRA files it loads
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=log, env={**os.environ, TOKEN_ENV: self.token},
                                          start_new_session=True)
        proc = self._proc
        try:
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), START_TIMEOUT_S)
        except TimeoutError:
            self._kill()
            raise StartFailed(f"did not load within {START_TIMEOUT_S:g} s") from None
        finally:
            proc.stdout.close()
        if not line:
            code = await asyncio.to_thread(proc.wait)
            raise StartFailed(f"{describe_exit(code)} while loading; {self._log_tail()}")
        self.port = int(json.loads(line)["port"])
        if not await self._check_health():
            self._kill()
            raise StartFailed("did not answer its health check after loading")

    async def _watch(self) -> str:
        """Return why the engine is gone: exited, killed as hung, or unresponsive."""
        proc = self._proc
        exited = asyncio.ensure_future(asyncio.to_thread(proc.wait))
        failures = 0
        try:
            while True:
                done, _ = await asyncio.wait({exited}, timeout=HEALTH_EVERY_S)
                if done:
                    return f"{describe_exit(exited.result())}; {self._log_tail()}"
                if self.state is EngineState.STOPPED:
                    return "stopped"
                if await self._check_health():
                    failures = 0
                    stalled = self.health.get("since_progress_s")
                    if stalled is not None and stalled > self._hung_after_s():
                        self._kill()
                        return f"hung: no progress for {stalled:.0f} s"
                else:
                    failures += 1
                    if failures >= HEALTH_FAILURES_TO_KILL:
                        self._kill()
                        return "stopped answering its health check"
        finally:
            if not exited.done():
                self._kill()
            with contextlib.suppress(Exception):
                await exited

    async def _check_health(self) -> bool:
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HEALTH_TIMEOUT_S)) as http, \
                    http.get(f"http://127.0.0.1:{self.port}/health") as response:
                if response.status != 200:
                    return False
                self.health = await response.json()
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return False
        self._write_status()
        return True

    async def start(self) -> None:
        """Warm start (at serve): begin loading now so the first question does not wait."""
        if self.state in (EngineState.IDLE, EngineState.STOPPED):
            self._check_installed()
            self._start_supervising()

    async def stop(self) -> None:
        self._set(EngineState.STOPPED)
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                await asyncio.to_thread(proc.wait, 5.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    # -- helpers ----------------------------------------------------------------------------
    def _hung_after_s(self) -> float:
        """No token for this long means a hang. Reading a full context makes no tokens, so the
        limit covers twice that at the measured speed (50 tokens/s if not measured)."""
        reading = self.health.get("prefill_tokens_per_s") or 50.0
        return max(HUNG_AFTER_S, 2 * self.spec.context_window / reading)

    def _alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _kill(self) -> None:
        if self._alive():
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()

    def _event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def _set(self, state: EngineState) -> None:
        if self._stopping and state is not EngineState.STOPPED:
            return  # the loop winding down must not report itself as starting again
        self.state = state
        if self._changed is not None:  # wake everyone waiting, then start a fresh event
            self._changed.set()
            self._changed = None
        self._write_status()

    def _write_status(self) -> None:
        with contextlib.suppress(OSError):
            self.status_path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.status_path.with_suffix(".partial")
            partial.write_text(json.dumps({**self.status(), "server_pid": os.getpid(),
                                           "port": self.port}, ensure_ascii=False))
            partial.replace(self.status_path)

    def _log(self, line: str) -> None:
        with contextlib.suppress(OSError), self.log_path.open("a", encoding="utf-8") as log:
            log.write(f"[supervisor {time.strftime('%Y-%m-%d %H:%M:%S')}] {line}\n")

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text("utf-8", "replace").strip().splitlines()
        except OSError:
            lines = []
        useful = [ln for ln in lines[-5:] if not ln.startswith("[supervisor")]
        return f"last log line: {useful[-1][:300]}" if useful else f"log: {self.log_path}"
