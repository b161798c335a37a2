"""The role table (core/permissions.py): each rule for each role, own agency and another."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from hanchang.core.errors import NotAllowed
from hanchang.core.permissions import RULES, SEE_EVERY_AGENCY, can, require
from hanchang.core.principal import Principal, Role

OWN, OTHER = 1, 2


def caller(role: Role) -> Principal:
    return Principal(10, "kim", OWN, "MOIS", role)


@dataclass
class Thing:
    agency_id: int
    is_common: bool = False
    created_by: int | None = None
    user_id: int | None = None


USER, AGENCY_ADMIN, PLATFORM_ADMIN, AUDITOR = (caller(r) for r in
                                               (Role.USER, Role.AGENCY_ADMIN, Role.PLATFORM_ADMIN, Role.AUDITOR))


@pytest.mark.parametrize(("action", "resource", "allowed"), [
    # only platform admins see every agency's things
    (SEE_EVERY_AGENCY, None, {PLATFORM_ADMIN}),
    # reading: own agency's and common collections; another agency's only for platform admins
    ("collections.read", Thing(OWN), {USER, AGENCY_ADMIN, PLATFORM_ADMIN, AUDITOR}),
    ("collections.read", Thing(OTHER, is_common=True), {USER, AGENCY_ADMIN, PLATFORM_ADMIN, AUDITOR}),
    ("collections.read", Thing(OTHER), {PLATFORM_ADMIN}),
    # changing: the owning agency's admins, and platform admins
    ("collections.change", Thing(OWN), {AGENCY_ADMIN, PLATFORM_ADMIN}),
    ("collections.change", Thing(OTHER), {PLATFORM_ADMIN}),
    ("collections.change", Thing(OTHER, is_common=True), {PLATFORM_ADMIN}),
    # creating: agency admins in their agency; common ones only platform admins
    ("collections.create", Thing(OWN), {AGENCY_ADMIN, PLATFORM_ADMIN}),
    ("collections.create", Thing(OWN, is_common=True), {PLATFORM_ADMIN}),
    ("users.create", None, {AGENCY_ADMIN, PLATFORM_ADMIN}),
    ("users.list", None, {AGENCY_ADMIN, PLATFORM_ADMIN}),
    ("users.grant", Role.AGENCY_ADMIN, {AGENCY_ADMIN, PLATFORM_ADMIN}),
    ("users.grant", Role.PLATFORM_ADMIN, {PLATFORM_ADMIN}),
    # audit: auditors of their own agency; platform admins everywhere; admins are not auditors
    ("audit.read", None, {AUDITOR, PLATFORM_ADMIN}),
    ("audit.read", Thing(OTHER), {PLATFORM_ADMIN}),
    ("connectors.register", None, {AGENCY_ADMIN, PLATFORM_ADMIN}),
    ("connectors.register", Thing(OTHER), {PLATFORM_ADMIN}),
    ("templates.manage", None, {AGENCY_ADMIN, PLATFORM_ADMIN}),
    ("window.admin_pages", None, {AGENCY_ADMIN, PLATFORM_ADMIN}),
    # fine-tuning: datasets, jobs and the models they make are the agency admins'
    ("training.manage", None, {AGENCY_ADMIN, PLATFORM_ADMIN}),
    ("training.manage", Thing(OTHER), {PLATFORM_ADMIN}),
    # operations: an agency's admins see and review their own agency; platform admins all
    ("operations.read", None, {AGENCY_ADMIN, PLATFORM_ADMIN}),
    ("operations.read", Thing(OTHER), {PLATFORM_ADMIN}),
    ("feedback.review", None, {AGENCY_ADMIN, PLATFORM_ADMIN}),
    ("feedback.review", Thing(OTHER), {PLATFORM_ADMIN}),
    # budgets: an agency's budget only by platform admins; a user's also by their agency's admins
    ("budgets.agency", Thing(OWN), {PLATFORM_ADMIN}),
    ("budgets.user", Thing(OWN), {AGENCY_ADMIN, PLATFORM_ADMIN}),
    ("budgets.user", Thing(OTHER), {PLATFORM_ADMIN}),
    # agents and snippets: built by anyone of the agency but auditors; changed and published by
    # their author or the agency's admins; publications reviewed by platform admins
    ("agents.create", None, {USER, AGENCY_ADMIN, PLATFORM_ADMIN}),
    ("agents.create", Thing(OTHER), {PLATFORM_ADMIN}),
    ("agents.change", Thing(OWN, created_by=10), {USER, AGENCY_ADMIN, PLATFORM_ADMIN}),
    ("agents.change", Thing(OWN, created_by=11), {AGENCY_ADMIN, PLATFORM_ADMIN}),
    ("agents.change", Thing(OTHER, created_by=10), {PLATFORM_ADMIN}),
    ("assets.publish", Thing(OWN, created_by=10), {USER, AGENCY_ADMIN, PLATFORM_ADMIN}),
    ("assets.publish", Thing(OWN, created_by=11), {AGENCY_ADMIN, PLATFORM_ADMIN}),
    ("assets.review", None, {PLATFORM_ADMIN}),
    # the adoption checklist: the agency's admins
    ("checklist.answer", Thing(OWN), {AGENCY_ADMIN, PLATFORM_ADMIN}),
    ("checklist.answer", Thing(OTHER), {PLATFORM_ADMIN}),
    # a background upload: followed by who sent it (an auditor who did too) and the agency's admins
    ("ingest_jobs.follow", Thing(OWN, user_id=10), {USER, AGENCY_ADMIN, PLATFORM_ADMIN, AUDITOR}),
    ("ingest_jobs.follow", Thing(OWN, user_id=11), {AGENCY_ADMIN, PLATFORM_ADMIN}),
    ("ingest_jobs.follow", Thing(OTHER, user_id=10), {PLATFORM_ADMIN}),
    ("ingest_jobs.follow", None, {AGENCY_ADMIN, PLATFORM_ADMIN}),
    ("evals.run", None, {USER, AGENCY_ADMIN, PLATFORM_ADMIN}),  # auditors read results, never run
    ("evals.run", Thing(OTHER), {PLATFORM_ADMIN}),
    ("evals.read", Thing(OWN), {USER, AGENCY_ADMIN, PLATFORM_ADMIN, AUDITOR}),
    ("evals.read", Thing(OTHER), {PLATFORM_ADMIN}),
])
def test_who_may(action, resource, allowed):
    for principal in (USER, AGENCY_ADMIN, PLATFORM_ADMIN, AUDITOR):
        assert can(principal, action, resource) is (principal in allowed), (action, principal.role)


def test_every_rule_is_tested_and_refuses_in_korean():
    tested = {"agencies.see_all", "collections.read", "collections.change", "collections.create", "users.create",
              "users.list", "users.grant", "audit.read", "connectors.register", "templates.manage",
              "window.admin_pages", "operations.read", "feedback.review", "budgets.agency", "budgets.user",
              "agents.create", "agents.change", "assets.publish", "assets.review", "checklist.answer",
              "ingest_jobs.follow", "evals.run", "evals.read", "training.manage"}
    assert set(RULES) == tested  # a new rule gets a row in test_who_may
    with pytest.raises(NotAllowed) as refused:
        require(USER, "collections.change", Thing(OWN))
    assert refused.value.status == 403 and "기관 관리자" in refused.value.message


def test_an_unknown_action_is_a_programming_error():
    with pytest.raises(KeyError):
        can(PLATFORM_ADMIN, "collections.delete_everything")
