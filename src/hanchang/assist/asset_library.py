"""The common asset library (공유 자산): what one agency built, others find, use or copy.

An agency publishes an agent, a prompt snippet, a drafting template, a custom service or a
connector description with a version, licence note, description and tags. Publishing checks
the content first: personal data anywhere in it, or a reference to a sensitive (S) or secret (C)
collection, refuses it with the reason. When `library.review_required` is on, a platform admin
approves each version before others see it (the previous version stays visible meanwhile).

Others search and preview published versions, use an agent directly (`agent:<id>`, with their
own rights), or fork any asset into their agency — a copy that stays theirs when the original
is withdrawn. Each asset shows its forks, calls, 👍 rate and the agencies using it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hanchang.assist import asset_documents as docs
from hanchang.audit import trail
from hanchang.config import CustomServiceConfig
from hanchang.core.errors import HanchangError, InvalidInput, NotFound
from hanchang.core.grades import Grade
from hanchang.core.permissions import can, require
from hanchang.core.principal import Principal
from hanchang.guard import pii
from hanchang.guard.destinations import DestinationPolicy
from hanchang.guard.recognizers import labels_ko
from hanchang.store.tables import (
    Agency,
    Agent,
    AssetUse,
    Feedback,
    Message,
    SharedAsset,
    SharedAssetVersion,
    UsageRecord,
    utcnow,
)


class PublishRefused(HanchangError):
    status, code = 422, "publish_refused"


# -- publishing -----------------------------------------------------------------------------
def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}[{i}]")


def content_problems(doc: dict[str, Any]) -> list[str]:
    """Why a document may not go to the common space (Korean), or nothing."""
    problems: list[str] = []
    found: dict[str, list[str]] = {}
    checked = {k: v for k, v in doc.items() if k not in ("format", "kind", "author_agency")}
    for path, text in _strings(checked):
        for finding in pii.scan(text):
            found.setdefault(finding.type, []).append(path)
    for kind, paths in found.items():
        places = ", ".join(dict.fromkeys(paths))
        problems.append(f"개인정보({labels_ko().get(kind, kind)} {len(paths)}건)가 들어 있습니다: {places}")
    for ref in (doc.get("content") or {}).get("collections") or ():
        grade = Grade.parse(ref.get("grade") or "O")
        if grade is not Grade.OPEN:
            problems.append(f"{grade.korean}({grade.value}) 등급 지식베이스 '{ref.get('name')}'을(를) 참조합니다. "
                            "공개(O) 지식베이스만 참조하도록 바꾼 뒤 게시하세요")
    return problems


def publish(session: Session, principal: Principal, kind: str, ref: str, *, description: str = "",
            tags: list[str] = (), licence: str = "", note: str = "", review_required: bool = False,
            custom_services: list[CustomServiceConfig] = ()) -> dict[str, Any]:
    """Publish (a new version of) one of the agency's things; audited in the same transaction."""
    doc, source = docs.document(session, principal, kind, ref, custom_services)
    if kind == "service":
        require(principal, "assets.review")  # config services are the platform's to share
    else:
        require(principal, "assets.publish", source)
    tags = list(dict.fromkeys(t.strip() for t in tags if t.strip()))[:10]
    if description:
        doc["description"] = description.strip()[:2000]
    problems = content_problems({**doc, "tags": tags})
    if problems:
        raise PublishRefused("공통 공간에 게시할 수 없습니다: " + "; ".join(problems) + ".",
                             "cannot publish: personal data or a non-public collection in the asset")
    # One asset per thing, however the caller named it (`agent:5` and `5` are one agent): by its id.
    source_ref = str(source.id) if kind in ("agent", "prompt") and source is not None else str(ref)
    asset = _asset_for(session, principal, kind, source_ref)
    # The version number is taken in one statement, so two publishers at once get 1 and 2.
    version = session.execute(update(SharedAsset).where(SharedAsset.id == asset.id)
                              .values(latest_version=SharedAsset.latest_version + 1)
                              .returning(SharedAsset.latest_version)).scalar_one()
    session.refresh(asset)
    asset.name, asset.description = doc["name"], doc.get("description", "")
    asset.tags, asset.licence = json.dumps(tags, ensure_ascii=False), licence.strip()[:200]
    asset.updated_at = utcnow()
    waits = review_required and not can(principal, "assets.review")  # a reviewer's own: at once
    doc.update(version=version, licence=asset.licence, tags=tags)
    session.add(SharedAssetVersion(asset_id=asset.id, version=version, status="pending" if waits
                                   else "published", document=json.dumps(doc, ensure_ascii=False), note=note,
                                   submitted_by=principal.user_id))
    if not waits and (asset.published_version or 0) < version:
        asset.published_version, asset.withdrawn = version, False
    session.flush()
    trail.record_by(session, principal, "assets.publish",
                    {"asset": asset.id, "kind": kind, "version": version,
                     "status": "pending" if waits else "published"})
    return describe(session, principal, asset)


def _asset_for(session: Session, principal: Principal, kind: str, source_ref: str) -> SharedAsset:
    """The library entry of one of the agency's things, made on its first publication."""
    where = (SharedAsset.kind == kind, SharedAsset.agency_id == principal.agency_id,
             SharedAsset.source_ref == source_ref)
    asset = session.scalar(select(SharedAsset).where(*where))
    if asset is not None:
        return asset
    try:
        with session.begin_nested():  # another request may be publishing it for the first time too
            asset = SharedAsset(kind=kind, agency_id=principal.agency_id, source_ref=source_ref, latest_version=0,
                                created_by=principal.user_id, withdrawn=False, name="", description="",
                                tags="[]", licence="")
            session.add(asset)
            session.flush()
        return asset
    except IntegrityError:
        return session.scalar(select(SharedAsset).where(*where))


def review(session: Session, principal: Principal, asset_id: int, version: int, approve: bool,
           note: str = "") -> dict[str, Any]:
    require(principal, "assets.review")
    asset = session.get(SharedAsset, asset_id, with_for_update=True)
    row = session.scalar(select(SharedAssetVersion).where(SharedAssetVersion.asset_id == asset_id,
                                                          SharedAssetVersion.version == version))
    if asset is None or row is None:
        raise NotFound(f"공유 자산 {asset_id}의 버전 {version}이(가) 없습니다.", f"no asset {asset_id} v{version}")
    if row.status != "pending":
        raise InvalidInput(f"이 버전은 이미 검토되었습니다({row.status}).", f"already {row.status}")
    if approve:
        problems = content_problems(json.loads(row.document))  # the rules may have changed since
        if problems:
            raise PublishRefused("승인할 수 없습니다: " + "; ".join(problems) + ".", "cannot approve")
    row.status, row.reviewed_by, row.review_note = ("published" if approve else "rejected"), principal.user_id, note
    if approve and (asset.published_version or 0) < version:
        asset.published_version, asset.withdrawn = version, False
    asset.updated_at = utcnow()
    trail.record_by(session, principal, "assets.review", {"asset": asset_id, "version": version,
                                                          "approved": approve})
    return describe(session, principal, asset)


def withdraw(session: Session, principal: Principal, asset_id: int) -> dict[str, Any]:
    """Hide an asset from the library. Forks are copies and keep working."""
    asset = _owned(session, principal, asset_id)
    require(principal, "assets.publish", asset)  # its publisher (created_by) or the agency's admins
    asset.withdrawn, asset.updated_at = True, utcnow()
    trail.record_by(session, principal, "assets.withdraw", {"asset": asset_id})
    return describe(session, principal, asset)


def _owned(session: Session, principal: Principal, asset_id: int) -> SharedAsset:
    asset = session.get(SharedAsset, asset_id)
    if asset is None or (asset.agency_id != principal.agency_id and not can(principal, "assets.review")):
        raise NotFound(f"공유 자산 {asset_id}이(가) 없습니다.", f"no asset {asset_id}")
    return asset


# -- finding and taking ----------------------------------------------------------------------
def _visible(principal: Principal):
    """Published and not withdrawn, or the caller's agency's own (any state)."""
    return or_((SharedAsset.published_version.is_not(None)) & SharedAsset.withdrawn.is_(False),
               SharedAsset.agency_id == principal.agency_id)


def search(session: Session, principal: Principal, query: str = "", kind: str | None = None,
           tag: str | None = None, pending: bool = False) -> list[dict[str, Any]]:
    statement = select(SharedAsset).order_by(SharedAsset.updated_at.desc()).limit(200)
    if pending:  # the review queue
        require(principal, "assets.review")
        statement = statement.where(SharedAsset.latest_version != func.coalesce(SharedAsset.published_version, 0))
    else:
        statement = statement.where(_visible(principal))
    if kind:
        statement = statement.where(SharedAsset.kind == kind)
    if query.strip():
        like = f"%{query.strip()}%"
        statement = statement.where(or_(SharedAsset.name.ilike(like), SharedAsset.description.ilike(like),
                                        SharedAsset.tags.ilike(like)))
    assets = list(session.scalars(statement))
    if tag:
        assets = [a for a in assets if tag in json.loads(a.tags)]
    numbers = stats(session, [a.id for a in assets])
    return [describe(session, principal, a, numbers.get(a.id)) for a in assets]


def _version(session: Session, asset: SharedAsset, version: int | None) -> SharedAssetVersion | None:
    if version is None:
        return None
    return session.scalar(select(SharedAssetVersion).where(SharedAssetVersion.asset_id == asset.id,
                                                           SharedAssetVersion.version == version))


def get_visible(session: Session, principal: Principal, asset_id: int) -> SharedAsset:
    asset = session.scalar(select(SharedAsset).where(SharedAsset.id == asset_id, _visible(principal)))
    if asset is None and can(principal, "assets.review"):
        asset = session.get(SharedAsset, asset_id)
    if asset is None:
        raise NotFound(f"공유 자산 {asset_id}이(가) 없습니다.", f"no asset {asset_id}")
    return asset


def _mine(principal: Principal, asset: SharedAsset) -> bool:
    """The publishing agency (and reviewers) also see pending, refused and withdrawn versions."""
    return asset.agency_id == principal.agency_id or can(principal, "assets.review")


def published_document(session: Session, principal: Principal, asset_id: int,
                       version: int | None = None) -> dict[str, Any]:
    """The document of a published version (the latest by default); an agency sees its own pending ones."""
    return _document_of(session, principal, get_visible(session, principal, asset_id), version)


def _document_of(session: Session, principal: Principal, asset: SharedAsset, version: int | None) -> dict[str, Any]:
    row = _version(session, asset, version or asset.published_version)
    mine = _mine(principal, asset)
    if row is None and mine:
        row = _version(session, asset, asset.latest_version)
    if row is None or (row.status != "published" and not mine) or (asset.withdrawn and not mine):
        raise NotFound(f"공유 자산 {asset.id}의 게시된 버전이 없습니다.", f"asset {asset.id} has no published version")
    return json.loads(row.document)


def preview(session: Session, principal: Principal, asset_id: int) -> dict[str, Any]:
    asset = get_visible(session, principal, asset_id)
    mine = _mine(principal, asset)
    versions = session.scalars(select(SharedAssetVersion).where(SharedAssetVersion.asset_id == asset_id)
                               .order_by(SharedAssetVersion.version.desc()))
    history = [{"version": v.version, "status": v.status, "note": v.note, "review_note": v.review_note,
                "created_at": v.created_at.isoformat()} for v in versions if mine or v.status == "published"]
    return {**describe(session, principal, asset, stats(session, [asset_id]).get(asset_id)),
            "document": _document_of(session, principal, asset, None), "versions": history}


def fork(session: Session, principal: Principal, asset_id: int, name: str | None = None,
         version: int | None = None, destinations: DestinationPolicy | None = None) -> dict[str, Any]:
    """Copy a published asset into the caller's agency; the copy is theirs (audited)."""
    asset = get_visible(session, principal, asset_id)
    doc = _document_of(session, principal, asset, version)
    made = docs.install(session, principal, doc, name=name, forked_from=asset.id, forked_version=doc.get("version"),
                        destinations=destinations)
    session.add(AssetUse(asset_id=asset.id, version=int(doc.get("version") or 0), agency_id=principal.agency_id,
                         user_id=principal.user_id, action="fork", target_ref=made.ref))
    trail.record_by(session, principal, "assets.fork", {"asset": asset.id, "version": doc.get("version"),
                                                        "made": made.ref})
    return made.describe()


def import_document(session: Session, principal: Principal, text: str | bytes,
                    destinations: DestinationPolicy | None = None) -> dict[str, Any]:
    """Make what an exported file describes in the caller's agency (audited)."""
    doc = docs.parse(text)
    made = docs.install(session, principal, doc, destinations=destinations)
    trail.record_by(session, principal, "assets.import", {"kind": doc["kind"], "made": made.ref,
                                                          "author_agency": doc.get("author_agency")})
    return made.describe()


# -- figures -------------------------------------------------------------------------------
def stats(session: Session, asset_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Forks, calls (an agent's own and its forks'), 👍 rate and agencies using each asset."""
    if not asset_ids:
        return {}
    numbers: dict[int, dict[str, Any]] = {i: {"forks": 0, "calls": 0, "agencies": set(), "up": 0, "down": 0}
                                          for i in asset_ids}
    for asset_id, code, forks in session.execute(
            select(AssetUse.asset_id, Agency.code, func.count()).join(Agency, Agency.id == AssetUse.agency_id)
            .where(AssetUse.asset_id.in_(asset_ids)).group_by(AssetUse.asset_id, Agency.code)):
        numbers[asset_id]["forks"] += forks
        numbers[asset_id]["agencies"].add(code)
    # The agents an agent asset stands for: its source and every fork of it.
    agent_assets: dict[int, int] = {}
    for asset_id, source in session.execute(select(SharedAsset.id, SharedAsset.source_ref).where(
            SharedAsset.id.in_(asset_ids), SharedAsset.kind == "agent")):
        if source.isdigit():
            agent_assets[int(source)] = asset_id
    for agent_id, asset_id in session.execute(select(Agent.id, Agent.forked_from)
                                              .where(Agent.forked_from.in_(asset_ids))):
        agent_assets[agent_id] = asset_id
    if agent_assets:
        for agent_id, code, calls in session.execute(
                select(UsageRecord.agent_id, UsageRecord.agency_code, func.count())
                .where(UsageRecord.agent_id.in_(agent_assets)).group_by(UsageRecord.agent_id, UsageRecord.agency_code)):
            numbers[agent_assets[agent_id]]["calls"] += calls
            if code:
                numbers[agent_assets[agent_id]]["agencies"].add(code)
        for agent_id, rating, count in session.execute(
                select(Message.agent_id, Feedback.rating, func.count())
                .join(Feedback, Feedback.message_id == Message.id)
                .where(Message.agent_id.in_(agent_assets)).group_by(Message.agent_id, Feedback.rating)):
            numbers[agent_assets[agent_id]]["up" if rating > 0 else "down"] += count
    result = {}
    for asset_id, n in numbers.items():
        rated = n["up"] + n["down"]
        result[asset_id] = {"forks": n["forks"], "calls": n["calls"], "agencies": sorted(n["agencies"]),
                            "thumbs_up_rate": round(n["up"] / rated, 3) if rated else None, "ratings": rated}
    return result


def describe(session: Session, principal: Principal, asset: SharedAsset,
             numbers: dict[str, Any] | None = None) -> dict[str, Any]:
    author = session.get(Agency, asset.agency_id)
    pending = asset.latest_version != (asset.published_version or 0)
    state = ("withdrawn" if asset.withdrawn else "published" if asset.published_version else "pending")
    described = {
        "id": asset.id, "kind": asset.kind, "kind_ko": docs.KINDS.get(asset.kind, asset.kind),
        "name": asset.name, "description": asset.description, "tags": json.loads(asset.tags),
        "licence": asset.licence, "author_agency": author.code if author else None,
        "author_agency_name": author.name if author else None, "version": asset.published_version,
        "latest_version": asset.latest_version, "review_pending": pending, "state": state,
        "mine": asset.agency_id == principal.agency_id, "updated_at": asset.updated_at.isoformat(),
        "stats": numbers or stats(session, [asset.id]).get(asset.id),
    }
    if asset.kind == "agent" and asset.published_version and not asset.withdrawn:
        described["use_as"] = f"agent:{asset.source_ref}"  # callable directly, with the caller's rights
    return described
