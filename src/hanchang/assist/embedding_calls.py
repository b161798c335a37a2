"""Embedding calls through the gateway, for the synchronous code that ingests and searches.

`GatewayEmbeddings` runs each call on the gateway's event loop from a worker thread and turns a
refusal (grade, personal data, uninspectable input) into `EmbeddingRefused`. The server uses its
own gateway; the command line starts one of its own (`command_line_embedder`), with its own
recorder.
"""

from __future__ import annotations

import asyncio
import getpass
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from hanchang.audit.recorder import Recorder
from hanchang.core.grades import Grade
from hanchang.core.principal import Principal, Role
from hanchang.gateway.errors import PersonalDataRefused, PolicyRefused, UninspectableInput
from hanchang.gateway.limits import InProcessLimiter
from hanchang.gateway.registry import ModelRegistry
from hanchang.gateway.router import Call, Gateway
from hanchang.knowledge.embedder import Embedder, EmbeddingRefused, embedding_spec

if TYPE_CHECKING:
    from hanchang.assist.platform import Platform

SYSTEM = Principal(None, "system", None, None, Role.PLATFORM_ADMIN)  # type: ignore[arg-type]


class GatewayEmbeddings:
    def __init__(self, gateway: Gateway, loop: asyncio.AbstractEventLoop):
        self.gateway = gateway
        self.loop = loop

    def __call__(self, body: dict[str, Any], grade: Grade, principal: Principal | None,
                 endpoint: str) -> dict[str, Any]:
        if self.loop.is_running() and threading.get_ident() == getattr(self.loop, "_thread_id", None):
            raise RuntimeError("embeddings are computed from a worker thread, never on the event loop")
        call = Call(principal or SYSTEM, endpoint, body, grade=grade, await_records=False)
        future = asyncio.run_coroutine_threadsafe(self.gateway.embeddings(call), self.loop)
        try:
            return future.result()
        except (PolicyRefused, PersonalDataRefused, UninspectableInput) as exc:
            raise EmbeddingRefused(exc.message) from exc


async def embed(platform: Platform, principal: Principal, body: dict[str, Any],
                grade: Grade) -> tuple[dict[str, Any], Call]:
    """`/v1/embeddings`: one embedding call as the caller (policy, guard, usage, audit)."""
    call = Call(principal, "embeddings", body, grade=grade)
    return await platform.gateway.embeddings(call), call


def gateway_embedder(settings, gateway: Gateway, loop: asyncio.AbstractEventLoop) -> Embedder | None:
    spec = embedding_spec(settings)
    return Embedder(spec, GatewayEmbeddings(gateway, loop)) if spec else None


@contextmanager
def command_line_embedder(settings, db) -> Iterator[Embedder | None]:
    """For `hanchang ingest/search`: a gateway on a private loop, acting as the operator."""
    spec = embedding_spec(settings)
    if spec is None:
        yield None
        return
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, name="cli-gateway", daemon=True)
    runner.start()
    recorder = Recorder(db)

    async def start_recorder() -> None:
        recorder.start()

    asyncio.run_coroutine_threadsafe(start_recorder(), loop).result()
    gateway = Gateway(ModelRegistry(settings.model_specs(), settings.default_model), InProcessLimiter(),
                      settings.limits, recorder, settings.policy, settings.pii)
    try:
        operator = Principal(None, f"cli:{_user()}", None, None, Role.PLATFORM_ADMIN)  # type: ignore[arg-type]
        yield Embedder(spec, GatewayEmbeddings(gateway, loop), operator)
    finally:
        asyncio.run_coroutine_threadsafe(recorder.aclose(), loop).result()
        asyncio.run_coroutine_threadsafe(gateway.aclose(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        runner.join(timeout=10)
        loop.close()


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "operator"
