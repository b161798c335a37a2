"""The portable form of a shared asset (`hanchang.asset/v1`): one small YAML or JSON file.

An agency exports an agent, a prompt, a drafting template, a custom service or a connector
description as such a file — to keep it in the public GitLab the AI Government Lab describes,
or to hand it to another platform — and imports one back into its own agency. The library
stores each published version in this same form. See docs/assets.md for the format.

Collections are referenced by id, name, grade and whether they are common; importing keeps
only those the importer may read (a common one by id, an own one by name) and reports the rest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from hanchang.assist import agents, connectors, prompts, templates
from hanchang.config import CustomServiceConfig
from hanchang.core.errors import AlreadyExists, HanchangError, NotFound
from hanchang.core.ids import in_range
from hanchang.core.principal import Principal
from hanchang.guard.destinations import DestinationPolicy
from hanchang.knowledge import collections as kc
from hanchang.store.tables import Agent, Collection, Connector, DraftTemplate

FORMAT = "hanchang.asset/v1"
KINDS = {"agent": "에이전트", "prompt": "프롬프트", "template": "서식", "service": "서비스", "connector": "연계 API"}
MAX_BYTES = 256_000


class AssetFormatError(HanchangError):
    status, code = 422, "invalid_asset"


@dataclass(frozen=True)
class Installed:
    """What an import or fork made in the caller's agency."""

    kind: str
    ref: str  # agent:12 | prompt:3 | template:weekly_report | connector:민원
    name: str
    collections_skipped: list[str]

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "ref": self.ref, "name": self.name,
                "collections_skipped": self.collections_skipped}


# -- from an agency's own thing to a document ---------------------------------------------------
def _collection_refs(session: Session, ids: list[int]) -> list[dict[str, Any]]:
    rows = {c.id: c for c in session.scalars(select(Collection).where(Collection.id.in_(ids)))} if ids else {}
    return [{"id": rows[i].id, "name": rows[i].name, "grade": rows[i].grade, "common": rows[i].is_common}
            for i in ids if i in rows]


def document(session: Session, principal: Principal, kind: str, ref: str,
             custom_services: list[CustomServiceConfig] = ()) -> tuple[dict[str, Any], Any]:
    """The portable document of one of the caller's agency's things, and that thing (for the
    permission check of whoever publishes it). 404 for another agency's."""
    base: dict[str, Any] = {"format": FORMAT, "kind": kind, "author_agency": principal.agency_code}
    if kind == "agent":
        definition = agents.usable(session, principal, int(ref) if str(ref).isdigit() else str(ref))
        if definition.shared:
            raise NotFound(f"기관의 에이전트 '{ref}'이(가) 없습니다.", f"no agent '{ref}' in your agency")
        row = session.get(Agent, definition.id)
        content = {"instructions": definition.instructions, "examples": list(definition.examples),
                   "model": definition.model, "services": list(definition.services),
                   "connectors": list(definition.connectors),
                   "collections": _collection_refs(session, list(definition.collections))}
        return {**base, "name": definition.name, "description": definition.description, "content": content}, row
    if kind == "prompt":
        row = prompts.own(session, principal, int(ref) if str(ref).isdigit() else -1)
        return {**base, "name": row.title, "description": "", "content": {"text": row.text}}, row
    if kind == "template":
        row = session.scalar(select(DraftTemplate).where(DraftTemplate.agency_id == principal.agency_id,
                                                         DraftTemplate.key == str(ref)))
        if row is None:
            raise NotFound(f"기관 서식 '{ref}'이(가) 없습니다. 기본 서식은 이미 모든 기관에 있습니다.",
                           f"no agency template '{ref}' (built-in ones are everywhere already)")
        content = {"key": row.key, "sections": json.loads(row.sections), "instructions": row.instructions,
                   "example": row.example}
        return {**base, "name": row.name_ko, "description": "", "content": content}, row
    if kind == "service":
        found = next((c for c in custom_services
                      if c.id == ref and (not c.agencies or principal.agency_code in c.agencies)), None)
        if found is None:
            raise NotFound(f"설정의 맞춤 서비스 '{ref}'이(가) 없습니다.", f"no custom service '{ref}'")
        content = {"id": found.id, "instructions": found.instructions, "input_label_ko": found.input_label_ko,
                   "max_tokens": found.max_tokens}
        return {**base, "name": found.name_ko, "description": found.description_ko, "content": content}, None
    if kind == "connector":
        row = session.scalar(select(Connector).where(Connector.agency_id == principal.agency_id,
                                                     Connector.name == str(ref)))
        if row is None:
            raise NotFound(f"연계 API '{ref}'이(가) 없습니다.", f"no connector '{ref}'")
        content = {"base_url": row.base_url, "spec": json.loads(row.spec), "zone": row.zone}
        return {**base, "name": row.name, "description": "", "content": content}, row
    raise _unknown_kind(kind)


def _unknown_kind(kind: Any) -> AssetFormatError:
    return AssetFormatError(f"자산 종류 '{kind}'은(는) 없습니다. 쓸 수 있는 종류: {', '.join(KINDS)}",
                            f"unknown kind '{kind}': use one of {', '.join(KINDS)}")


# -- files ---------------------------------------------------------------------------------
def dump(doc: dict[str, Any], fmt: str = "yaml") -> str:
    if fmt == "json":
        return json.dumps(doc, ensure_ascii=False, indent=2)
    if fmt != "yaml":
        raise AssetFormatError("내보내기 형식은 yaml 또는 json입니다.", "format must be yaml or json")
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def _text(content: dict[str, Any], key: str, limit: int = 8000, required: bool = True) -> str:
    value = content.get(key, "")
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > limit:
        raise AssetFormatError(f"content.{key}에 {limit}자 이내의 글을 넣어 주세요.",
                               f"content.{key} must be text of at most {limit} characters")
    return value


def _strings(content: dict[str, Any], key: str) -> list[str]:
    value = content.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AssetFormatError(f"content.{key}는 글의 목록이어야 합니다.", f"content.{key} must be a list of strings")
    return value


MAX_DEPTH = 32


def _check_shape(text: str | bytes) -> None:
    """Refuse, before building anything, a document nested deeper than any asset needs (a
    deeply nested file would exhaust the parser's stack) or using YAML aliases (which can
    multiply a small file into a huge one)."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise AssetFormatError(f"자산 파일의 구조가 너무 깊습니다({MAX_DEPTH}단계까지). 파일을 확인해 주세요.",
                                       f"the document nests deeper than {MAX_DEPTH} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        elif isinstance(event, yaml.AliasEvent):
            raise AssetFormatError("자산 파일에 YAML 별칭(*이름)은 쓸 수 없습니다. 값을 그대로 적어 주세요.",
                                   "YAML aliases are not accepted in an asset file")


def parse(text: str | bytes) -> dict[str, Any]:
    """A document from a YAML or JSON file, checked; a clear error says what to fix."""
    if len(text.encode() if isinstance(text, str) else text) > MAX_BYTES:
        raise AssetFormatError(f"자산 파일은 {MAX_BYTES // 1000} KB 이하여야 합니다.",
                               f"an asset file is at most {MAX_BYTES // 1000} KB")
    try:
        _check_shape(text)
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" ({where.line + 1}번째 줄)" if where else ""
        raise AssetFormatError(f"YAML/JSON으로 읽을 수 없는 파일입니다{line}.", f"not YAML or JSON{line}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise AssetFormatError(f"한창 자산 파일이 아닙니다: 'format: {FORMAT}'가 있어야 합니다.",
                               f"not a Hanchang asset: 'format: {FORMAT}' is required")
    if doc.get("kind") not in KINDS:
        raise _unknown_kind(doc.get("kind"))
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise AssetFormatError("name에 100자 이내의 이름을 넣어 주세요.", "name: 1 to 100 characters")
    if not isinstance(doc.get("content"), dict):
        raise AssetFormatError("content 항목이 없습니다.", "content is missing")
    if not isinstance(doc.get("description", ""), str):
        raise AssetFormatError("description은 글이어야 합니다.", "description must be text")
    content = doc["content"]
    kind = doc["kind"]
    if kind in ("agent", "service"):
        _text(content, "instructions")
    if kind == "agent":
        for key in ("examples", "services", "connectors"):
            _strings(content, key)
        refs = content.get("collections") or []
        if not isinstance(refs, list) or not all(isinstance(r, dict) and isinstance(r.get("name"), str)
                                                 for r in refs):
            raise AssetFormatError("content.collections는 {name, grade, common} 목록이어야 합니다.",
                                   "content.collections must list {name, grade, common}")
    elif kind == "prompt":
        _text(content, "text")
    elif kind == "template":
        _text(content, "key", 64)
        _text(content, "instructions", 4000)
        _strings(content, "sections")
    elif kind == "connector":
        _text(content, "base_url", 500)
        if not isinstance(content.get("spec"), dict):
            raise AssetFormatError("content.spec에 OpenAPI 3 문서가 있어야 합니다.", "content.spec must be OpenAPI 3")
        if content.get("zone", "internal") not in ("internal", "external"):
            raise AssetFormatError("content.zone은 internal 또는 external입니다.", "content.zone: internal | external")
    return doc


# -- from a document to the caller's agency's own thing ---------------------------------------------
def _readable_collections(session: Session, principal: Principal,
                          refs: list[dict[str, Any]]) -> tuple[list[int], list[str]]:
    """Common collections by id, the importer's own by name; the rest are reported, not used."""
    kept: list[int] = []
    skipped: list[str] = []
    readable = kc.readable(principal)
    for ref in refs:
        found = None
        if ref.get("common") and in_range(ref.get("id")):
            found = session.scalar(readable.where(Collection.id == ref["id"], Collection.is_common.is_(True)))
        if found is None:
            found = session.scalar(readable.where(Collection.name == ref["name"],
                                                  Collection.agency_id == principal.agency_id))
        if found is None:
            skipped.append(str(ref["name"]))
        else:
            kept.append(found.id)
    return list(dict.fromkeys(kept)), skipped


def install(session: Session, principal: Principal, doc: dict[str, Any], *, name: str | None = None,
            forked_from: int | None = None, forked_version: int | None = None,
            destinations: DestinationPolicy | None = None) -> Installed:
    """Make the document's thing in the caller's agency (their rights, their permissions).
    A custom service becomes an agent: in the database an agent is what a service is in config."""
    kind, content = doc["kind"], doc["content"]
    name = (name or doc["name"]).strip()
    if kind in ("agent", "service"):
        kept, skipped = _readable_collections(session, principal, content.get("collections") or [])
        spec = agents.AgentSpec(name, content["instructions"], doc.get("description", ""), list(kept),
                                list(content.get("services") or []), list(content.get("connectors") or []),
                                content.get("model"), list(content.get("examples") or []))
        made = agents.create(session, principal, spec, forked_from=forked_from, forked_version=forked_version)
        return Installed("agent", made.ref, made.name, skipped)
    if kind == "prompt":
        row = prompts.create(session, principal, name, content["text"], forked_from=forked_from)
        return Installed("prompt", f"prompt:{row.id}", row.title, [])
    if kind == "template":
        key = content["key"]
        if session.scalar(select(DraftTemplate.id).where(DraftTemplate.agency_id == principal.agency_id,
                                                         DraftTemplate.key == key)):
            raise AlreadyExists(f"이 기관에 '{key}' 서식이 이미 있습니다. "
                                "그 서식을 지우거나 이름을 바꾼 뒤 다시 가져오세요.",
                                f"your agency already has a template '{key}'")
        made = templates.save(session, principal, key, name, content["sections"], content["instructions"],
                              content.get("example") or "")
        return Installed("template", f"template:{made.id}", made.name_ko, [])
    if kind == "connector":
        # An agency decides auto-approval and what grade may reach it for itself: neither is copied;
        # the zone comes along (a server outside the network stays outside).
        row = connectors.register(session, principal, name, content["base_url"], content["spec"],
                                  auto_approve_reads=False, policy=destinations or DestinationPolicy(),
                                  zone=content.get("zone"))
        return Installed("connector", f"connector:{row.name}", row.name, [])
    raise _unknown_kind(kind)
