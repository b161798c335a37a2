"""Who may do what: the one table of role rules. Everything else asks `can` or `require`.

A rule looks at the caller's role and, where it matters, at the agency that owns the thing
acted on (`resource.agency_id`, and `resource.is_common` for things shared with every
agency). Agency isolation in *reads* is also enforced in the queries (`knowledge.collections.
readable`, audit scopes), which ask `can(principal, SEE_EVERY_AGENCY)` for the one exception.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hanchang.core.errors import NotAllowed
from hanchang.core.principal import Principal, Role

ADMINS = (Role.AGENCY_ADMIN, Role.PLATFORM_ADMIN)


def _platform(p: Principal, _: Any) -> bool:
    return p.role is Role.PLATFORM_ADMIN


def _admin_of(p: Principal, resource: Any) -> bool:
    """A platform admin anywhere; an agency admin in their own agency (or for a new thing there)."""
    if p.role is Role.PLATFORM_ADMIN:
        return True
    owner = getattr(resource, "agency_id", p.agency_id) if resource is not None else p.agency_id
    return p.role is Role.AGENCY_ADMIN and owner == p.agency_id


def _reader_of(p: Principal, resource: Any) -> bool:
    return (p.role is Role.PLATFORM_ADMIN or getattr(resource, "agency_id", None) == p.agency_id
            or bool(getattr(resource, "is_common", False)))


def _admin_creating(p: Principal, resource: Any) -> bool:
    """Agency admins create in their agency; only platform admins create common (공통) things."""
    if getattr(resource, "is_common", False):
        return p.role is Role.PLATFORM_ADMIN
    return p.role in ADMINS


def _builder(p: Principal, resource: Any) -> bool:
    """Users and admins build agents and snippets in their own agency; auditors only read."""
    if p.role is Role.AUDITOR:
        return False
    return p.role is Role.PLATFORM_ADMIN or getattr(resource, "agency_id", p.agency_id) == p.agency_id


def _author_or_admin(p: Principal, resource: Any) -> bool:
    """Who made a thing changes it; so do the admins of its agency."""
    if _admin_of(p, resource):
        return True
    return (p.role is not Role.AUDITOR and getattr(resource, "agency_id", None) == p.agency_id
            and getattr(resource, "created_by", None) == p.user_id)


def _uploader_or_admin(p: Principal, resource: Any) -> bool:
    """A background upload is followed (and cancelled) by who sent it and the admins of its agency;
    with no resource: whether the caller follows every upload of their agency."""
    if _admin_of(p, resource):
        return True
    return resource is not None and getattr(resource, "agency_id", None) == p.agency_id \
        and getattr(resource, "user_id", None) == p.user_id


def _auditor_of(p: Principal, resource: Any) -> bool:
    if p.role is Role.PLATFORM_ADMIN:
        return True
    return p.role is Role.AUDITOR and (resource is None or getattr(resource, "agency_id", None) == p.agency_id)


def _may_grant(p: Principal, role: Any) -> bool:
    """Admins give roles in their agency; only a platform admin makes another."""
    return p.role is Role.PLATFORM_ADMIN or (p.role is Role.AGENCY_ADMIN and role is not Role.PLATFORM_ADMIN)


@dataclass(frozen=True)
class Rule:
    allows: Callable[[Principal, Any], bool]
    refusal_ko: str
    refusal_en: str


SEE_EVERY_AGENCY = "agencies.see_all"

RULES: dict[str, Rule] = {
    SEE_EVERY_AGENCY: Rule(_platform, "모든 기관의 정보는 플랫폼 관리자만 볼 수 있습니다.",
                           "only platform admins see every agency"),
    "collections.read": Rule(_reader_of, "이 지식베이스를 볼 권한이 없습니다.", "not your agency's collection"),
    "collections.create": Rule(_admin_creating, "지식베이스는 기관 관리자만 만들 수 있습니다. 공통 지식베이스는 "
                               "플랫폼 관리자만 만들 수 있습니다.",
                               "agency admins create collections; platform admins create common ones"),
    "collections.change": Rule(_admin_of, "이 지식베이스를 바꿀 권한이 없습니다. 기관 관리자에게 요청하세요.",
                               "only the agency's admins may change this collection"),
    "users.list": Rule(_admin_of, "관리자만 사용자를 볼 수 있습니다.", "admins only"),
    "users.create": Rule(_admin_of, "관리자만 사용자를 만들 수 있습니다.", "admins only"),
    "users.grant": Rule(_may_grant, "플랫폼 관리자는 플랫폼 관리자만 만들 수 있습니다.",
                        "only platform admins grant platform_admin"),
    "audit.read": Rule(_auditor_of, "감사 기록은 감사 담당자(auditor)만, 자기 기관의 것만 볼 수 있습니다.",
                       "auditors read their own agency's audit trail"),
    "connectors.register": Rule(_admin_of, "연계 API는 기관 관리자만 등록할 수 있습니다.",
                                "admins register connectors"),
    "templates.manage": Rule(_admin_of, "서식은 기관 관리자만 바꿀 수 있습니다.",
                             "only agency admins manage templates"),
    "budgets.agency": Rule(_platform, "기관 예산은 플랫폼 관리자만 바꿀 수 있습니다.",
                           "only platform admins change agency budgets"),
    "budgets.user": Rule(_admin_of, "사용자 예산은 그 기관의 관리자만 바꿀 수 있습니다.",
                         "only the user's agency admins change their budget"),
    "operations.read": Rule(_admin_of, "운영 현황은 관리자만, 자기 기관의 것만 볼 수 있습니다.",
                            "admins see their own agency's operations figures"),
    "feedback.review": Rule(_admin_of, "답변 평가 검토는 그 기관의 관리자만 할 수 있습니다.",
                            "only the agency's admins review its feedback"),
    "agents.create": Rule(_builder, "에이전트와 프롬프트는 기관의 사용자·관리자가 만듭니다"
                          "(감사 담당자는 볼 수만 있습니다).",
                          "users and admins of the agency build agents"),
    "agents.change": Rule(_author_or_admin, "이 에이전트는 만든 사람이나 기관 관리자만 바꿀 수 있습니다.",
                          "only its author or the agency's admins change it"),
    "assets.publish": Rule(_author_or_admin, "공유 자산은 만든 사람이나 기관 관리자만 게시·회수할 수 있습니다.",
                           "only its author or the agency's admins publish or withdraw it"),
    "assets.review": Rule(_platform, "공유 자산 게시 검토는 플랫폼 관리자만 합니다.",
                          "platform admins review publications"),
    "checklist.answer": Rule(_admin_of, "도입 체크리스트는 기관 관리자가 작성합니다.",
                             "agency admins fill in the adoption checklist"),
    "ingest_jobs.follow": Rule(_uploader_or_admin, "이 문서 처리 작업은 올린 사람과 기관 관리자만 볼 수 있습니다.",
                               "only the uploader and the agency's admins follow an upload job"),
    "evals.run": Rule(_builder, "평가는 기관의 사용자·관리자가 만들고 실행합니다(감사 담당자는 볼 수만 있습니다).",
                      "users and admins of the agency create and run evaluations"),
    "evals.read": Rule(_reader_of, "이 평가는 다른 기관의 것입니다.", "an evaluation is read in its own agency"),
    "training.manage": Rule(_admin_of, "학습 데이터와 파인튜닝은 그 기관의 관리자만 다룹니다.",
                            "only the agency's admins build datasets and fine-tune"),
    "window.admin_pages": Rule(lambda p, _: p.role in ADMINS, "관리자만 볼 수 있는 화면입니다.", "admins only"),
}


def can(principal: Principal, action: str, resource: Any = None) -> bool:
    """Whether `principal` may do `action` (a key of RULES) on `resource` (anything with
    `agency_id`, optionally `is_common`; None for the caller's own agency)."""
    return RULES[action].allows(principal, resource)


def require(principal: Principal, action: str, resource: Any = None) -> None:
    """`can`, or a 403 saying in Korean and English who may."""
    if not can(principal, action, resource):
        rule = RULES[action]
        raise NotAllowed(rule.refusal_ko, rule.refusal_en)


def may_hold_role(holder: Role, carried: Role) -> bool:
    """A key carries its user's role, or any role when its user is a platform admin."""
    return carried is holder or holder is Role.PLATFORM_ADMIN
