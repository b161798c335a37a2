"""Tables. Every change here comes with a numbered migration in migrations/versions/."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Agency(Base):
    __tablename__ = "agencies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    users: Mapped[list[User]] = relationship(back_populates="agency")


class User(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("agency_id", "name", name="uq_users_agency_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    agency: Mapped[Agency] = relationship(back_populates="users")


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id", ondelete="RESTRICT"))
    role: Mapped[str] = mapped_column(String(32))
    # The public lookup part of the key; the secret part is stored only as a hash.
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(128))
    label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    user: Mapped[User] = relationship()
    agency: Mapped[Agency] = relationship()


class UsageRecord(Base):
    """One row per model call, written whole or not at all."""

    __tablename__ = "usage_records"
    __table_args__ = (
        Index("ix_usage_created_at", "created_at"),
        Index("ix_usage_agency_created", "agency_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    request_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    user_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    api_key_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    agency_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    agency_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    endpoint: Mapped[str] = mapped_column(String(64))
    model_requested: Mapped[str] = mapped_column(String(200))
    model_used: Mapped[str | None] = mapped_column(String(200), nullable=True)
    stream: Mapped[bool] = mapped_column(Boolean, default=False)
    tokens_in: Mapped[int] = mapped_column(Integer, default=0)
    tokens_out: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    ttft_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[int] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # For the operations page, SLOs and the KPI report (migration 0008):
    cost_won: Mapped[float] = mapped_column(Float, default=0.0)  # at the model's configured price
    grounded: Mapped[bool] = mapped_column(Boolean, default=False)  # answered from knowledge bases
    data_grade: Mapped[str | None] = mapped_column(String(1), nullable=True)  # effective grade
    rerouted: Mapped[bool] = mapped_column(Boolean, default=False)  # the grade policy chose another model
    pii_masked: Mapped[int] = mapped_column(Integer, default=0)  # personal-data entities masked
    agent_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the agent answering (0009)


class AuditRecord(Base):
    """One append-only, hash-chained record per AI interaction and per admin action."""

    __tablename__ = "audit_records"
    __table_args__ = (
        Index("ix_audit_created_at", "created_at"),
        Index("ix_audit_agency_created", "agency_code", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    category: Mapped[str] = mapped_column(String(16))  # "ai" | "admin"
    action: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    user_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    agency_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    role: Mapped[str | None] = mapped_column(String(32), nullable=True)
    model_requested: Mapped[str | None] = mapped_column(String(200), nullable=True)
    model_used: Mapped[str | None] = mapped_column(String(200), nullable=True)
    declared_grade: Mapped[str | None] = mapped_column(String(1), nullable=True)
    effective_grade: Mapped[str | None] = mapped_column(String(1), nullable=True)
    grade_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    pii_mode: Mapped[str | None] = mapped_column(String(16), nullable=True)
    pii_counts: Mapped[str] = mapped_column(Text, default="{}")  # JSON {type: count}
    source_ids: Mapped[str] = mapped_column(Text, default="[]")  # JSON list
    tokens_in: Mapped[int] = mapped_column(Integer, default=0)
    tokens_out: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[int] = mapped_column(Integer, default=200)
    outcome: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text, default="{}")  # JSON
    prompt_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    record_hash: Mapped[str] = mapped_column(String(64))


class AuditChainHead(Base):
    """The single row every append locks: the last record's id and hash."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_id: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))


class AgencyKey(Base):
    """An agency's data key (`data`: seals stored values; `index`: keys the hashes of index
    terms), wrapped by the agency's key-encryption key in the key provider (store/keyring.py).
    Never clear here: a copy of the database alone opens nothing."""

    __tablename__ = "agency_keys"
    __table_args__ = (Index("ix_agency_keys_agency", "agency_id", "purpose", "state"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(8))  # data | index
    kek_version: Mapped[int] = mapped_column(Integer)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(8), default="active")  # active | retired
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Collection(Base):
    """A knowledge base of one agency; `is_common` shares it with every agency (공통)."""

    __tablename__ = "collections"
    __table_args__ = (UniqueConstraint("agency_id", "name", name="uq_collections_agency_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    grade: Mapped[str] = mapped_column(String(1), default="O")
    is_common: Mapped[bool] = mapped_column(Boolean, default=False)
    index_generation: Mapped[int] = mapped_column(Integer, default=0)
    # Its index holds keyed hashes of terms (an S/C passage is or was in it); never turned off.
    keyed_index: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    agency: Mapped[Agency] = relationship()


class Document(Base):
    """One source (a file path or an upload name) in a collection; its text lives in versions."""

    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("collection_id", "source_key", name="uq_documents_source"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    source_key: Mapped[str] = mapped_column(String(1000))
    title: Mapped[str] = mapped_column(Text)  # sealed when the document is S or C
    grade: Mapped[str] = mapped_column(String(1), default="O")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DocumentVersion(Base):
    """A version of a document in force from `effective_from` until the next version's date."""

    __tablename__ = "document_versions"
    __table_args__ = (UniqueConstraint("document_id", "number", name="uq_versions_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    effective_from: Mapped[date | None] = mapped_column(Date, nullable=True)
    parser: Mapped[str] = mapped_column(String(32))
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    pages: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ocr_pages: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON list: pages read by OCR
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Chunk(Base):
    __tablename__ = "chunks"
    __table_args__ = (Index("ix_chunks_collection", "collection_id"),
                      Index("ix_chunks_version", "version_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    version_id: Mapped[int] = mapped_column(ForeignKey("document_versions.id", ondelete="CASCADE"))
    ordinal: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    section: Mapped[str] = mapped_column(Text, default="")
    page: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Kiwi analysis, kept so an index can be rebuilt without analysing the text again.
    terms: Mapped[str] = mapped_column(Text, default="")
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class SearchTerm(Base):
    """A term of one field (1 morphemes+pairs, 2 character bigrams) of a collection's shared
    index (PostgreSQL retrieval, knowledge/shared_index.py). Its document frequency is counted
    from its postings when a search reads them."""

    __tablename__ = "search_terms"
    __table_args__ = (UniqueConstraint("collection_id", "field", "term", name="uq_search_terms"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    field: Mapped[int] = mapped_column(SmallInteger)
    term: Mapped[str] = mapped_column(Text)


class SearchBlock(Base):
    """A block of one term's postings: packed big-endian (chunk id int4, tf int2, chunk length
    int4) records (`shared_index.POSTING`). A term has a few; the smaller ones get merged."""

    __tablename__ = "search_blocks"
    __table_args__ = (PrimaryKeyConstraint("term_id", "block"),)

    term_id: Mapped[int] = mapped_column(ForeignKey("search_terms.id", ondelete="CASCADE"))
    block: Mapped[int] = mapped_column(Integer)
    postings: Mapped[bytes] = mapped_column(LargeBinary)


class SearchChunk(Base):
    """A chunk the shared index holds: its version's validity, field lengths and terms. No foreign
    key: the index finds chunks deleted since it last synchronised by comparing with `chunks`."""

    __tablename__ = "search_chunks"
    __table_args__ = (Index("ix_search_chunks_collection", "collection_id"),)

    chunk_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    collection_id: Mapped[int] = mapped_column(Integer)
    valid_from: Mapped[int] = mapped_column(Integer)
    valid_to: Mapped[int] = mapped_column(Integer)
    morph_len: Mapped[int] = mapped_column(Integer)
    gram_len: Mapped[int] = mapped_column(Integer)
    terms: Mapped[bytes] = mapped_column(LargeBinary)  # its term ids (packed int4), to lower their frequencies


class SearchCollection(Base):
    """The generation of a collection the shared index reflects."""

    __tablename__ = "search_collections"

    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True,
                                               autoincrement=False)
    generation: Mapped[int] = mapped_column(Integer)
    keyed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # terms are keyed hashes


class WebSession(Base):
    """A signed-in browser. Only the SHA-256 of the cookie's token is stored."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    id_token: Mapped[str | None] = mapped_column(Text, nullable=True)  # signed in by SSO: the logout hint


class LoginFailure(Base):
    """Failed sign-ins per user name, for lockout."""

    __tablename__ = "login_failures"
    __table_args__ = (UniqueConstraint("agency_code", "user_name", name="uq_login_failures_user"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency_code: Mapped[str] = mapped_column(String(32))
    user_name: Mapped[str] = mapped_column(String(100))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_user", "user_id", "updated_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(Text)  # sealed when its first question is S or C
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_conversation", "conversation_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))  # user | assistant | notice
    content: Mapped[str] = mapped_column(Text)
    grade: Mapped[str] = mapped_column(String(1), default="O")
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    meta: Mapped[str] = mapped_column(Text, default="{}")  # JSON: citations, route notice, pii …
    agent_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the agent that answered
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Feedback(Base):
    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("message_id", "user_id", name="uq_feedback_once"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    agency_code: Mapped[str] = mapped_column(String(32))
    rating: Mapped[int] = mapped_column(Integer)  # +1 / -1
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # An administrator's review of a 👎 answer (open | resolved | knowledge_gap | model_error).
    review_status: Mapped[str] = mapped_column(String(16), default="open")
    expected_answer: Mapped[str] = mapped_column(Text, default="")
    reviewed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class BudgetOverride(Base):
    """An administrator's budget for one agency or user, replacing the configured one.

    A limit left empty keeps the configured value; 0 means unlimited. `until` ends the override.
    """

    __tablename__ = "budget_overrides"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(64), unique=True)  # agency:MOIS | user:12
    requests: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    won: Mapped[float | None] = mapped_column(Float, nullable=True)
    until: Mapped[date | None] = mapped_column(Date, nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    set_by: Mapped[str] = mapped_column(String(200), default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class HealthSample(Base):
    """One reachability probe of one model, for availability against the SLO."""

    __tablename__ = "health_samples"
    __table_args__ = (Index("ix_health_samples_created", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    model: Mapped[str] = mapped_column(String(200))
    ok: Mapped[bool] = mapped_column(Boolean)
    latency_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Connector(Base):
    """An agency's internal API, described by an OpenAPI 3 document, that `act` may call."""

    __tablename__ = "connectors"
    __table_args__ = (UniqueConstraint("agency_id", "name", name="uq_connectors_agency_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    base_url: Mapped[str] = mapped_column(String(500))
    spec: Mapped[str] = mapped_column(Text)  # OpenAPI 3 document as JSON
    auto_approve_reads: Mapped[bool] = mapped_column(Boolean, default=False)
    # Where the API runs (internal | external) and the highest data grade a call may carry to it.
    zone: Mapped[str] = mapped_column(String(16), default="internal", server_default="internal")
    max_grade: Mapped[str] = mapped_column(String(1), default="O", server_default="C")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PendingAction(Base):
    """A call the model proposed; nothing is sent until the user confirms (or reads auto-approve)."""

    __tablename__ = "actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    connector_id: Mapped[int] = mapped_column(ForeignKey("connectors.id", ondelete="CASCADE"))
    operation: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(10))
    url: Mapped[str] = mapped_column(String(2000))
    body: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON
    headers: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON: the operation's header parameters
    grade: Mapped[str] = mapped_column(String(1), default="O", server_default="O")  # the data grade it carries
    pii: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON: personal data found, by type
    status: Mapped[str] = mapped_column(String(16))  # pending | executed | rejected | failed | refused
    result: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class DraftTemplate(Base):
    """A drafting template an agency manages (sections + instructions + optional example).

    Built-in templates live in code; an agency row with the same key replaces one for that agency.
    """

    __tablename__ = "draft_templates"
    __table_args__ = (UniqueConstraint("agency_id", "key", name="uq_draft_templates_agency_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    name_ko: Mapped[str] = mapped_column(String(100))
    sections: Mapped[str] = mapped_column(Text)  # JSON list of section titles
    instructions: Mapped[str] = mapped_column(Text)
    example: Mapped[str] = mapped_column(Text, default="")
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Agent(Base):
    """A work agent (업무 에이전트): instructions over an agency's knowledge, used like a model.

    Lists are JSON: `collections` ids, `services` work-service ids, `connectors` names,
    `examples` questions. It runs with the caller's rights, so none of them widens access.
    """

    __tablename__ = "agents"
    __table_args__ = (UniqueConstraint("agency_id", "name", name="uq_agents_agency_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    instructions: Mapped[str] = mapped_column(Text)
    collections: Mapped[str] = mapped_column(Text, default="[]")
    services: Mapped[str] = mapped_column(Text, default="[]")
    connectors: Mapped[str] = mapped_column(Text, default="[]")
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    examples: Mapped[str] = mapped_column(Text, default="[]")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    forked_from: Mapped[int | None] = mapped_column(Integer, nullable=True)  # shared_assets.id
    forked_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PromptSnippet(Base):
    """A prompt snippet an agency keeps (프롬프트 조각)."""

    __tablename__ = "prompt_snippets"
    __table_args__ = (UniqueConstraint("agency_id", "title", name="uq_prompt_snippets_agency_title"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    forked_from: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SharedAsset(Base):
    """An asset an agency published to the common library (공유 자산).

    `source_ref` names the original in its agency (an agent id, a template key, …). Others see
    `published_version`; a newer version may wait for review. Withdrawing hides it from the
    library; copies already made (forks) are independent rows and keep working.
    """

    __tablename__ = "shared_assets"
    __table_args__ = (UniqueConstraint("kind", "agency_id", "source_ref", name="uq_shared_assets_source"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # agent | prompt | template | service | connector
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id", ondelete="CASCADE"))
    source_ref: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[str] = mapped_column(Text, default="[]")
    licence: Mapped[str] = mapped_column(String(200), default="")
    published_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latest_version: Mapped[int] = mapped_column(Integer, default=0)
    withdrawn: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SharedAssetVersion(Base):
    """One published (or waiting, or refused) version: the portable document, as JSON."""

    __tablename__ = "shared_asset_versions"
    __table_args__ = (UniqueConstraint("asset_id", "version", name="uq_shared_asset_versions"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("shared_assets.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    document: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # pending | published | rejected
    note: Mapped[str] = mapped_column(Text, default="")
    submitted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    reviewed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    review_note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AssetUse(Base):
    """An agency took a shared asset: forked (copied) or imported it."""

    __tablename__ = "asset_uses"
    __table_args__ = (Index("ix_asset_uses_asset", "asset_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("shared_assets.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    action: Mapped[str] = mapped_column(String(16))  # fork
    target_ref: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ChecklistAnswer(Base):
    """One answer of an agency's adoption checklist (guideline 3.3) for one project."""

    __tablename__ = "checklist_answers"
    __table_args__ = (UniqueConstraint("agency_id", "project", "item", name="uq_checklist_answers"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id", ondelete="CASCADE"))
    project: Mapped[str] = mapped_column(String(100))
    item: Mapped[str] = mapped_column(String(16))
    answer: Mapped[str] = mapped_column(String(8))  # yes | no | na
    note: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[str] = mapped_column(String(500), default="")
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class StoredResponse(Base):
    """A `/v1/responses` answer kept (`store`, the default) so a later call can continue from it
    (`previous_response_id`) or read it again; only its own user ever finds it."""

    __tablename__ = "stored_responses"
    __table_args__ = (Index("ix_stored_responses_user", "user_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # resp_<hex>
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    model: Mapped[str] = mapped_column(String(200))
    grade: Mapped[str] = mapped_column(String(1))  # the effective grade of the conversation so far
    messages: Mapped[str] = mapped_column(Text)  # JSON: the conversation as chat messages, instructions left out
    response: Mapped[str] = mapped_column(Text)  # JSON: the response object as returned


class UserIdentity(Base):
    """A user's account at an agency's identity provider (single sign-on), linked to one user."""

    __tablename__ = "user_identities"
    __table_args__ = (UniqueConstraint("issuer", "subject", name="uq_identities_issuer_subject"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    issuer: Mapped[str] = mapped_column(String(500))
    subject: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_login_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SignOnAttempt(Base):
    """A sign-in sent to the identity provider and not back yet: its state, PKCE verifier and
    nonce, kept on the server (any host can finish it), used once, valid for minutes."""

    __tablename__ = "sign_on_attempts"

    state: Mapped[str] = mapped_column(String(64), primary_key=True)
    code_verifier: Mapped[str] = mapped_column(String(128))
    nonce: Mapped[str] = mapped_column(String(64))
    # sha256 of the random value in the cookie of the browser that started it: only that browser
    # may finish it (login CSRF).
    browser_binding: Mapped[str] = mapped_column(String(64), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class IngestJob(Base):
    """Documents being read into a collection in the background (a long scan, a large batch):
    queued, run on the host that received the files (they wait under HANCHANG_HOME), one file per
    transaction, cancellable, and resumed after a restart from the first file not yet done."""

    __tablename__ = "ingest_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id", ondelete="CASCADE"), index=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    host: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), index=True)  # queued|running|succeeded|failed|cancelled
    grade: Mapped[str | None] = mapped_column(String(1), nullable=True)
    effective_from: Mapped[date | None] = mapped_column(Date, nullable=True)
    files: Mapped[str] = mapped_column(Text)  # JSON: [{name, path, key}]
    results: Mapped[str] = mapped_column(Text, default="[]")  # JSON: one result per file done
    files_total: Mapped[int] = mapped_column(Integer)
    files_done: Mapped[int] = mapped_column(Integer, default=0)
    current: Mapped[str | None] = mapped_column(String(400), nullable=True)  # the file being read, and its page
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class EvalDataset(Base):
    """A version of an agency's evaluation set (질문, 핵심 사실, 참고 답변, 자료): items are kept
    as written, with their hash, so a run names exactly what it was measured on."""

    __tablename__ = "eval_datasets"
    __table_args__ = (UniqueConstraint("agency_id", "name", "version", name="uq_eval_datasets_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    grade: Mapped[str] = mapped_column(String(1))  # the most sensitive data the items hold
    sha256: Mapped[str] = mapped_column(String(64))
    item_count: Mapped[int] = mapped_column(Integer)
    items: Mapped[str] = mapped_column(Text)  # JSON list
    source: Mapped[str | None] = mapped_column(String(200), nullable=True)  # file name, korquad, shipped set
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Eval(Base):
    """An evaluation in OpenAI's Evals shape: what a sample is scored on (testing criteria)."""

    __tablename__ = "evals"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # eval_<hex>
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    data_source_config: Mapped[str] = mapped_column(Text)  # JSON
    testing_criteria: Mapped[str] = mapped_column(Text)  # JSON list
    meta: Mapped[str] = mapped_column(Text, default="{}")  # JSON: OpenAI's metadata
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EvalRun(Base):
    """One run of an evaluation against a target (model, model + collections, agent), in the
    background, with progress; stored with the dataset version and hash, config and commit."""

    __tablename__ = "eval_runs"
    __table_args__ = (Index("ix_eval_runs_eval", "eval_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # evalrun_<hex>
    eval_id: Mapped[str] = mapped_column(ForeignKey("evals.id", ondelete="CASCADE"))
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), index=True)  # queued|in_progress|completed|failed|canceled
    grade: Mapped[str] = mapped_column(String(1))
    data_source: Mapped[str] = mapped_column(Text)  # JSON, as asked (inline items left out)
    dataset_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    dataset_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    dataset_sha256: Mapped[str] = mapped_column(String(64))
    items: Mapped[str] = mapped_column(Text)  # JSON: the items measured (a snapshot)
    config: Mapped[str] = mapped_column(Text)  # JSON: target, sampling, criteria, judge, commit, version
    meta: Mapped[str] = mapped_column(Text, default="{}")
    items_total: Mapped[int] = mapped_column(Integer)
    items_done: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    summary: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON: counts, per criterion, latency
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class EvalOutputItem(Base):
    """One item of a run: what the target answered (the sample) and each criterion's result."""

    __tablename__ = "eval_output_items"
    __table_args__ = (UniqueConstraint("run_id", "position", name="uq_eval_output_items_position"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # outputitem_<hex>
    run_id: Mapped[str] = mapped_column(ForeignKey("eval_runs.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    item_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(8))  # pass|fail|error
    sample: Mapped[str] = mapped_column(Text)  # JSON
    results: Mapped[str] = mapped_column(Text)  # JSON list
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# Tables of other rooms live beside their room's name; importing them here puts them in
# Base.metadata wherever the tables are used (migrations, the schema check).
from hanchang.store import training_tables  # noqa: E402,F401
