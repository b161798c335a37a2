"""Changes every server process must see at once: PostgreSQL NOTIFY and LISTEN.

`announce(session, topic)` queues a notification in the transaction that makes the change, so
it is delivered when — and only if — that transaction commits (a rolled-back revocation tells
no one). Each server process keeps one connection listening (`ChangeListener`, a thread) and
runs the handler for the topic on its event loop: a revoked key stops working in every worker
and host at once, a budget override applies at once, instead of when caches expire.

On SQLite (one host) nothing is sent; the caches' few seconds of expiry remain the bound.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)
CHANNEL = "hanchang_changes"
KEYS = "keys"  # API keys revoked, users' roles changed: cached principals are stale
BUDGETS = "budgets"  # budget overrides set or cleared
TOPICS = (KEYS, BUDGETS)
RECONNECT_S = 2.0
POLL_S = 0.25  # how long a wait for notifications lasts: the bound on how long stopping takes


def announce(session: Session, topic: str) -> None:
    """Tell every server process, when this transaction commits, that `topic` changed."""
    if topic not in TOPICS:
        raise ValueError(f"unknown change topic {topic!r}")
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, :topic)"), {"channel": CHANNEL, "topic": topic})


def _libpq_url(database_url: str) -> str:
    """psycopg's own connection string from SQLAlchemy's URL (without the driver suffix)."""
    scheme, rest = database_url.split("://", 1)
    return "postgresql://" + rest if scheme.startswith("postgresql") else database_url


class ChangeListener:
    """LISTEN on its own connection in a thread; each notification runs its topic's handler on the
    event loop. A lost connection is opened again (and every handler runs once, since changes
    may have been missed meanwhile)."""

    def __init__(self, database_url: str, handlers: dict[str, Callable[[], None]],
                 loop: asyncio.AbstractEventLoop):
        self._url = _libpq_url(database_url)
        self._handlers = handlers
        self._loop = loop
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hanchang-changes", daemon=True)
        self.listening = threading.Event()  # set while a LISTEN connection is open

    def start(self) -> ChangeListener:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)

    def _dispatch(self, topic: str) -> None:
        handler = self._handlers.get(topic)
        if handler is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(handler)

    def _run(self) -> None:
        import psycopg

        missed = False
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True, connect_timeout=5) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    if missed:  # changes while we were away: drop every cache once
                        for topic in self._handlers:
                            self._dispatch(topic)
                    while not self._stopping.is_set():
                        for notice in connection.notifies(timeout=POLL_S):
                            self._dispatch(notice.payload)
            except Exception as exc:  # the database restarted or the network dropped: listen again
                if self._stopping.is_set():
                    break
                log.warning("change notifications interrupted (%s); listening again in %.0f s",
                            type(exc).__name__, RECONNECT_S)
            self.listening.clear()
            missed = True
            self._stopping.wait(RECONNECT_S)
