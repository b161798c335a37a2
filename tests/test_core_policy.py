"""Grades order as the guideline says, and the policy never lets data above a model's clearance out."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hanchang.core.grades import Grade, highest
from hanchang.core.models import ModelSpec, Zone
from hanchang.core.policy import decide_model_access

grades = st.sampled_from(list(Grade))
zones = st.sampled_from(list(Zone))


def spec(zone: Zone, max_grade: Grade) -> ModelSpec:
    return ModelSpec(name="m", backend="openai", zone=zone, max_grade=max_grade)


def test_lattice_order():
    assert Grade.OPEN < Grade.SENSITIVE < Grade.CLASSIFIED
    assert sorted([Grade.CLASSIFIED, Grade.OPEN, Grade.SENSITIVE]) == [
        Grade.OPEN, Grade.SENSITIVE, Grade.CLASSIFIED]
    assert highest() is Grade.OPEN
    assert highest(Grade.SENSITIVE, Grade.OPEN) is Grade.SENSITIVE
    with pytest.raises(TypeError):
        assert Grade.OPEN < "S"


@pytest.mark.parametrize("text", ["o", "O", "공개", " o "])
def test_parse(text):
    assert Grade.parse(text) is Grade.OPEN


def test_parse_rejects_with_help():
    with pytest.raises(ValueError, match="O \\(공개\\), S \\(민감\\) or C \\(기밀\\)"):
        Grade.parse("secret")


@given(grades, zones, grades)
def test_never_above_clearance_and_never_above_O_outside(grade, zone, max_grade):
    decision = decide_model_access(grade, spec(zone, max_grade))
    if decision.allowed:
        assert grade <= max_grade
        if zone is Zone.EXTERNAL:
            assert grade is Grade.OPEN
    else:
        assert "내부망 모델" in decision.reason


@given(grades, grades)
def test_internal_models_allow_up_to_their_clearance(grade, max_grade):
    assert decide_model_access(grade, spec(Zone.INTERNAL, max_grade)).allowed == (grade <= max_grade)


def test_refusal_is_korean_and_actionable():
    decision = decide_model_access(Grade.SENSITIVE, spec(Zone.EXTERNAL, Grade.OPEN))
    assert not decision.allowed
    assert decision.reason.startswith("민감(S) 등급 자료는 외부망 모델 · 공개까지")
