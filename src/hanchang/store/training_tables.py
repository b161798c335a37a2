"""Tables of the training room: datasets to fine-tune on, fine-tuning jobs with their events and
checkpoints, and the models those jobs produce. Every change comes with a numbered migration."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hanchang.store.tables import Base, utcnow


class TrainingDataset(Base):
    """A version of an agency's fine-tuning set: chat examples (OpenAI's chat format), split into
    train and held-out once, personal data pseudonymised, graded as its most sensitive source."""

    __tablename__ = "training_datasets"
    __table_args__ = (UniqueConstraint("agency_id", "name", "version", name="uq_training_datasets_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_id: Mapped[str] = mapped_column(String(64), unique=True)  # file-<hex>: OpenAI's /v1/files id
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    grade: Mapped[str] = mapped_column(String(1))
    sha256: Mapped[str] = mapped_column(String(64))  # of the examples as stored (train + held-out)
    source: Mapped[str] = mapped_column(String(300))  # upload:<file> | feedback | collection:<name> via <model>
    train_count: Mapped[int] = mapped_column(Integer)
    holdout_count: Mapped[int] = mapped_column(Integer)
    split_seed: Mapped[int] = mapped_column(Integer)
    pii_replaced: Mapped[int] = mapped_column(Integer, default=0)
    examples: Mapped[str] = mapped_column(Text)  # JSON {"train": [...], "holdout": [...]}, sealed for S/C
    bytes: Mapped[int] = mapped_column(Integer)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class FineTuningJob(Base):
    """A fine-tuning job in OpenAI's shape, queued in the database and run by a training worker
    process (never the API process); resumed from its last checkpoint after a restart."""

    __tablename__ = "fine_tuning_jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # ftjob-<hex>
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    base_model: Mapped[str] = mapped_column(String(200))
    training_dataset_id: Mapped[int] = mapped_column(ForeignKey("training_datasets.id", ondelete="CASCADE"))
    validation_dataset_id: Mapped[int | None] = mapped_column(
        ForeignKey("training_datasets.id", ondelete="CASCADE"), nullable=True)
    status: Mapped[str] = mapped_column(String(20), index=True)  # OpenAI's job states
    grade: Mapped[str] = mapped_column(String(1))  # floor of what it makes: max(training, validation)
    hyperparameters: Mapped[str] = mapped_column(Text)  # JSON, as asked ("auto" kept) and as resolved
    seed: Mapped[int] = mapped_column(Integer)
    suffix: Mapped[str | None] = mapped_column(String(64), nullable=True)
    meta: Mapped[str] = mapped_column(Text, default="{}")  # OpenAI's metadata
    fine_tuned_model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    trained_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # 0..1
    manifest: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON: what reproduces the run
    error: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON {code, message, param}
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker: Mapped[str | None] = mapped_column(String(255), nullable=True)  # host:pid running it
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class FineTuningEvent(Base):
    __tablename__ = "fine_tuning_events"
    __table_args__ = (Index("ix_fine_tuning_events_job", "job_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("fine_tuning_jobs.id", ondelete="CASCADE"))
    level: Mapped[str] = mapped_column(String(8))  # info|warn|error
    type: Mapped[str] = mapped_column(String(16))  # message|metrics
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON (metrics)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class FineTuningCheckpoint(Base):
    __tablename__ = "fine_tuning_checkpoints"
    __table_args__ = (UniqueConstraint("job_id", "step", name="uq_fine_tuning_checkpoints_step"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # ftckpt-<hex>
    job_id: Mapped[str] = mapped_column(ForeignKey("fine_tuning_jobs.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[str] = mapped_column(Text)  # JSON: OpenAI's names (train_loss, valid_loss, ...)
    path: Mapped[str] = mapped_column(String(500))  # under HANCHANG_HOME
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TrainedModel(Base):
    """A model a job made: a LoRA adapter on a registry model, owned by an agency, graded no lower
    than what it was trained on, served only after the eval gate promotes it."""

    __tablename__ = "trained_models"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)  # local:ft-<agency>-<yyyymmdd>-<n>
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("fine_tuning_jobs.id", ondelete="SET NULL"),
                                               nullable=True)
    base_model: Mapped[str] = mapped_column(String(200))
    grade: Mapped[str] = mapped_column(String(1))  # the floor: never lowered
    status: Mapped[str] = mapped_column(String(16), index=True)  # awaiting_eval|served|rejected|retired
    adapter_path: Mapped[str] = mapped_column(String(500))  # GGUF LoRA, under HANCHANG_HOME
    adapter_sha256: Mapped[str] = mapped_column(String(64))
    lora_scale: Mapped[float] = mapped_column(Float, default=1.0)
    gate: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON: the eval gate's verdict and runs
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    promoted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
