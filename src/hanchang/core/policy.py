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


# -- the request-level decision (issue 3) -------------------------------------------------
@dataclass(frozen=True, slots=True)
class GradedItem:
    """Something placed in the prompt that carries its own grade."""

    kind: str  # "attachment" | "passage"
    ref: str  # file name, document id …
    grade: Grade


@dataclass(frozen=True, slots=True)
class EffectiveGrade:
    grade: Grade
    reason: str  # e.g. "declared O; passage doc:12 S -> S"


def effective_grade(declared: Grade, items: tuple[GradedItem, ...] | list[GradedItem]) -> EffectiveGrade:
    """max(declared, every attachment, every passage actually placed in the prompt)."""
    grade = max((item.grade for item in items), default=declared)
    grade = max(grade, declared)
    raisers = [f"{i.kind} {i.ref} {i.grade.value}" for i in items if i.grade > declared]
    reason = f"declared {declared.value}" + (f"; {'; '.join(raisers)}" if raisers else "")
    return EffectiveGrade(grade, f"{reason} -> {grade.value}")


class RouteVerdict(str, Enum):
    ALLOW = "allow"
    REROUTE = "reroute"
    REFUSE = "refuse"


@dataclass(frozen=True, slots=True)
class RouteDecision:
    verdict: RouteVerdict
    requested: ModelSpec
    model: ModelSpec | None  # who may answer; None when refused
    grade: Grade
    reason: str  # Korean, shown to the user when rerouted or refused


def decide_route(
    grade: Grade,
    requested: ModelSpec,
    models: tuple[ModelSpec, ...] | list[ModelSpec],
    *,
    reroute: bool,
    preferred: tuple[str, ...] | list[str] = (),
) -> RouteDecision:
    """Which model may answer a request of `grade` that asked for `requested`.

    Allowed as asked when the requested model clears the grade. Otherwise, if the deployment
    allows rerouting, the first preferred (then any) internal model of the same kind that clears
    it; otherwise a refusal. Sensitive context is never dropped to make a request fit.
    """
    if decide_model_access(grade, requested).allowed:
        return RouteDecision(RouteVerdict.ALLOW, requested, requested, grade, "")
    if reroute:
        rank = {name: i for i, name in enumerate(preferred)}
        options = sorted(
            (m for m in models if m.kind == requested.kind and m.zone is Zone.INTERNAL
             and decide_model_access(grade, m).allowed),
            key=lambda m: (rank.get(m.name, len(rank)), m.max_grade.rank),
        )
        if options:
            chosen = options[0]
            return RouteDecision(
                RouteVerdict.REROUTE, requested, chosen, grade,
                f"{grade.korean}({grade.value}) 등급 자료가 포함되어 '{requested.name}' 대신 "
                f"{chosen.describe_korean()} 모델 '{chosen.name}'이(가) 답변했습니다.",
            )
    return RouteDecision(
        RouteVerdict.REFUSE, requested, None, grade,
        decide_model_access(grade, requested).reason
        + (" 이 등급을 처리할 수 있는 내부망 모델이 없습니다. 관리자에게 문의하세요."
           if reroute else ""),
    )
