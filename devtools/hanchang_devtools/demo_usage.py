"""Generated usage history for the operations page's demos, tests and screenshots.

Writes usage rows, model health samples and rated answers spread over past days, as the
platform itself would have recorded them (deterministic for one seed). Never used by the product.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from hanchang.store.db import Database
from hanchang.store.tables import Conversation, Feedback, HealthSample, Message, UsageRecord, User

SERVICES = (("chat.completions", False, 0.45), ("service.qa", True, 0.3), ("service.draft", False, 0.1),
            ("service.summarize", False, 0.1), ("embeddings", False, 0.05))
QUESTIONS = ("재택근무 신청 기한은?", "민원 처리 기한 연장 절차는?", "출장비 정산 서류는?", "연가 사용 규정은?")


def generate(db: Database, agency: str, *, days: int = 14, calls_per_day: int = 120, seed: int = 7,
             models: tuple[str, ...] = ("local",), price_per_1k: float = 2.0, now: datetime | None = None) -> int:
    """Write `days` days of calls for the users of `agency`; returns the number of usage rows."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    with db.session() as session:
        users = list(session.scalars(select(User).join(User.agency).where(User.agency.has(code=agency))))
        if not users:
            raise ValueError(f"agency {agency!r} has no users")
        rows, samples = [], []
        for day in range(days, 0, -1):
            base = now - timedelta(days=day)
            load = calls_per_day * (0.4 if base.weekday() >= 5 else 1.0) * rng.uniform(0.8, 1.2)
            for _ in range(int(load)):
                at = base + timedelta(hours=rng.uniform(0, 9), minutes=rng.uniform(0, 59))
                endpoint, grounded, _ = rng.choices(SERVICES, weights=[s[2] for s in SERVICES])[0]
                user = rng.choice(users)
                model = rng.choice(models)
                roll = rng.random()
                status, code = ((503, "upstream_unavailable") if roll < 0.01 else
                                (403, "data_grade_refused") if roll < 0.03 else
                                (403, "personal_data_blocked") if roll < 0.04 else (200, None))
                t_in = rng.randint(300, 2500) if grounded else rng.randint(40, 600)
                t_out = 0 if endpoint == "embeddings" else rng.randint(60, 500)
                latency = int(rng.lognormvariate(8.0 if grounded else 7.6, 0.45)) if status == 200 else 80
                rows.append(dict(
                    created_at=at, request_id=uuid.uuid4().hex, user_id=user.id, user_name=user.name,
                    agency_id=user.agency_id, agency_code=agency, endpoint=endpoint, model_requested=model,
                    model_used=model if status == 200 else None, stream=endpoint == "chat.completions",
                    tokens_in=t_in if status == 200 else 0, tokens_out=t_out if status == 200 else 0,
                    latency_ms=latency, ttft_ms=latency // 4 if status == 200 else None, status=status,
                    error_code=code, cost_won=(t_in + t_out) * price_per_1k / 1000 if status == 200 else 0.0,
                    grounded=grounded, data_grade=rng.choice("OOOS"), rerouted=rng.random() < 0.03,
                    pii_masked=rng.choice((0, 0, 0, 1, 2))))
            for minute in range(0, 24 * 60, 30):
                for model in models:
                    samples.append(dict(created_at=base + timedelta(minutes=minute), model=model,
                                        ok=rng.random() > 0.002, latency_ms=rng.randint(2, 30)))
            owner = rng.choice(users)
            conversation = Conversation(user_id=owner.id, title="생성된 예시 대화", created_at=base, updated_at=base)
            session.add(conversation)
            session.flush()
            for _ in range(rng.randint(2, 6)):
                question = rng.choice(QUESTIONS)
                session.add(Message(conversation_id=conversation.id, role="user", content=question, created_at=base))
                answer = Message(conversation_id=conversation.id, role="assistant", content="(생성된 예시 답변)",
                                 model=models[0], created_at=base, meta=json.dumps({"citations": []}))
                session.add(answer)
                session.flush()
                rating = 1 if rng.random() < 0.8 else -1
                session.add(Feedback(message_id=answer.id, user_id=owner.id, agency_code=agency, rating=rating,
                                     reason="" if rating > 0 else "근거가 부족함", created_at=base))
        session.bulk_insert_mappings(UsageRecord, rows)
        session.bulk_insert_mappings(HealthSample, samples)
    return len(rows)
