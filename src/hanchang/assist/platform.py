"""The platform the use cases work with: one typed object instead of an untyped `app.state`.

Built once per server process by the composition root (`hanchang.server`) when it starts,
and handed to every use case. The window and the API see the same one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hanchang.audit.recorder import Recorder
from hanchang.config import Settings
from hanchang.gateway.router import Gateway
from hanchang.knowledge.embedder import Embedder
from hanchang.knowledge.index_store import IndexStore
from hanchang.knowledge.ingest_jobs import IngestJobRunner
from hanchang.store.db import Database

if TYPE_CHECKING:  # the services use the platform: a type-only import
    from hanchang.assist.services.base import Service


@dataclass
class Platform:
    settings: Settings
    db: Database
    gateway: Gateway  # the one path to the models
    knowledge: IndexStore  # the collections' retrieval indexes
    embedder: Embedder | None  # query and ingest embeddings, through `gateway`
    services: dict[str, Service]  # the work services offered (built-in, config, plugins)
    recorder: Recorder  # usage rows and audit records, written in batches
    started_at: int  # Unix time, shown as `created` of /v1/models
    ingest_jobs: IngestJobRunner | None = None  # large uploads, read in the background
    eval_runs: Any = None  # hanchang.evals.runner.EvalRunner: evaluation runs, in the background
