"""The one place that decides whether data of a grade may flow to a model.

Every backend call goes through `decide_model_access`. Issue 3 widens the inputs
(attachments, retrieved passages, reroute policy); the rule stays here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from hanchang.core.grades import Grade
from hanchang.core.models import ModelSpec, Zone


class Verdict(str, Enum):
    ALLOW = "allow"
    REFUSE = "refuse"


@dataclass(frozen=True, slots=True)
class AccessDecision:
    verdict: Verdict
    model: str
    grade: Grade
    reason: str

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOW


def decide_model_access(grade: Grade, model: ModelSpec) -> AccessDecision:
    """May data of `grade` be sent to `model`? Pure; no I/O."""
    # An external-zone model never sees more than public data, whatever its config claims.
    ceiling = model.max_grade if model.zone is Zone.INTERNAL else min(model.max_grade, Grade.OPEN)
    if grade <= ceiling:
        return AccessDecision(Verdict.ALLOW, model.name, grade, "model clearance covers the grade")
    return AccessDecision(
        Verdict.REFUSE,
        model.name,
        grade,
        f"{grade.korean}({grade.value}) 등급 자료는 {model.describe_korean()} 모델 '{model.name}'에 "
        f"보낼 수 없습니다. {grade.korean} 등급을 허용하는 내부망 모델을 선택하세요.",
    )
