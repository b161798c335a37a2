"""Work agents (업무 에이전트): instructions over an agency's knowledge, used like a model.

An agent is called as `model: "agent:<id>"` — in the window's picker or over `/v1` by any
OpenAI client. It never widens access: it runs with the caller's rights, so a collection the
caller cannot read is simply not used, and the grade policy, the personal-data guard, limits
and the audit trail apply exactly as for plain chat (the call goes through the same gateway).

Which agents a caller may use: their own agency's (live), and agents other agencies published
to the common library (the published version, not the author's unpublished edits).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hanchang.audit import trail
from hanchang.core.errors import AlreadyExists, HanchangError, NotFound
from hanchang.core.ids import in_range
from hanchang.core.permissions import require
from hanchang.core.principal import Principal
from hanchang.knowledge import collections as kc
from hanchang.store.tables import Agency, Agent, Collection, SharedAsset, SharedAssetVersion, utcnow

PREFIX = "agent:"
MAX_EXAMPLES, MAX_LIST = 10, 20


class AgentError(HanchangError):
    status, code = 422, "invalid_agent"


def is_ref(model: Any) -> bool:
    return isinstance(model, str) and model.startswith(PREFIX)


def parse_ref(model: str) -> int:
    raw = model[len(PREFIX):]
    if not (raw.isascii() and raw.isdigit() and in_range(int(raw))):
        raise NotFound(f"에이전트 '{model}'을(를) 찾을 수 없습니다. 'agent:번호' 형식으로 쓰세요.",
                       f"no agent '{model}': use agent:<id>")
    return int(raw)


@dataclass
class AgentSpec:
    """What an agent is, as a caller writes it (the window's form, the API, an imported file)."""

    name: str
    instructions: str
    description: str = ""
    collections: list[int | str] = field(default_factory=list)  # ids or names
    services: list[str] = field(default_factory=list)
    connectors: list[str] = field(default_factory=list)
    model: str | None = None
    examples: list[str] = field(default_factory=list)

    def validated(self) -> AgentSpec:
        name, instructions = self.name.strip(), self.instructions.strip()
        if not name or len(name) > 100:
            raise AgentError("에이전트 이름을 100자 이내로 넣어 주세요.", "name: 1 to 100 characters")
        if not instructions or len(instructions) > 8000:
            raise AgentError("지침(instructions)을 8000자 이내로 넣어 주세요.", "instructions: 1 to 8000 characters")
        examples = [e.strip() for e in self.examples if isinstance(e, str) and e.strip()]
        if len(examples) > MAX_EXAMPLES or any(len(e) > 500 for e in examples):
            raise AgentError(f"예시 질문은 {MAX_EXAMPLES}개, 각 500자 이내로 넣어 주세요.",
                             f"at most {MAX_EXAMPLES} examples of 500 characters")
        for label, values in (("collections", self.collections), ("services", self.services),
                              ("connectors", self.connectors)):
            if len(values) > MAX_LIST:
                raise AgentError(f"{label}는 {MAX_LIST}개까지 넣을 수 있습니다.", f"at most {MAX_LIST} {label}")
        return AgentSpec(name, instructions, self.description.strip()[:2000], list(self.collections),
                         _unique(self.services), _unique(self.connectors), (self.model or "").strip() or None,
                         examples)


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(v.strip() for v in values if isinstance(v, str) and v.strip()))


@dataclass(frozen=True)
class Definition:
    """An agent as a caller may use it: their agency's live row, or a published version."""

    id: int
    agency_code: str
    name: str
    description: str
    instructions: str
    collections: tuple[int, ...]
    services: tuple[str, ...]
    connectors: tuple[str, ...]
    model: str | None
    examples: tuple[str, ...]
    shared: bool  # used from the common library (another agency's published agent)
    created_by: int | None = None
    asset_id: int | None = None
    version: int | None = None
    forked_from: int | None = None

    @property
    def ref(self) -> str:
        return f"{PREFIX}{self.id}"

    def system_message(self) -> dict[str, str]:
        return {"role": "system", "content": f"[업무 에이전트: {self.name}]\n{self.instructions}"}

    def describe(self) -> dict[str, Any]:
        return {"id": self.ref, "number": self.id, "name": self.name, "description": self.description,
                "instructions": self.instructions, "collections": list(self.collections),
                "services": list(self.services), "connectors": list(self.connectors), "model": self.model,
                "examples": list(self.examples), "agency": self.agency_code, "shared": self.shared,
                "asset_id": self.asset_id, "version": self.version, "forked_from": self.forked_from,
                "created_by": self.created_by}


def _definition(row: Agent, agency_code: str) -> Definition:
    return Definition(row.id, agency_code, row.name, row.description, row.instructions,
                      tuple(json.loads(row.collections)), tuple(json.loads(row.services)),
                      tuple(json.loads(row.connectors)), row.model, tuple(json.loads(row.examples)),
                      shared=False, created_by=row.created_by, forked_from=row.forked_from)


def _published_agents() -> Select:
    """Agents in the library as other agencies see them: each with its published version's document."""
    return (select(SharedAsset, SharedAssetVersion.document)
            .join(SharedAssetVersion, (SharedAssetVersion.asset_id == SharedAsset.id)
                  & (SharedAssetVersion.version == SharedAsset.published_version))
            .where(SharedAsset.kind == "agent", SharedAsset.withdrawn.is_(False)))


def _published(session: Session, agent_id: int) -> tuple[SharedAsset, dict[str, Any]] | None:
    found = session.execute(_published_agents().where(SharedAsset.source_ref == str(agent_id))).first()
    return (found[0], json.loads(found[1])) if found else None


def _no_agent(agent_id: int) -> NotFound:
    return NotFound(f"에이전트 '{PREFIX}{agent_id}'을(를) 찾을 수 없습니다.", f"no agent '{PREFIX}{agent_id}'")


def _shared_definition(agent_id: int, asset: SharedAsset, document: dict[str, Any], agency_code: str) -> Definition:
    content = document.get("content") or {}
    ids = tuple(c["id"] for c in content.get("collections") or () if in_range(c.get("id")))
    return Definition(agent_id, agency_code, document.get("name", asset.name), document.get("description", ""),
                      content.get("instructions", ""), ids, tuple(content.get("services") or ()),
                      tuple(content.get("connectors") or ()), content.get("model"),
                      tuple(content.get("examples") or ()), shared=True, asset_id=asset.id,
                      version=asset.published_version)


def usable(session: Session, principal: Principal, ref: str | int) -> Definition:
    """The agent a caller may use, or 404 (another agency's unpublished agent does not exist)."""
    agent_id = parse_ref(ref) if isinstance(ref, str) else ref
    if not in_range(agent_id):
        raise _no_agent(agent_id)
    found = session.execute(select(Agent, Agency.code).join(Agency, Agency.id == Agent.agency_id)
                            .where(Agent.id == agent_id)).first()
    if found is not None and found[0].agency_id == principal.agency_id:
        return _definition(found[0], found[1])
    if found is not None:
        published = _published(session, agent_id)
        if published is not None:
            return _shared_definition(agent_id, *published, found[1])
    raise _no_agent(agent_id)


def list_usable(session: Session, principal: Principal) -> list[Definition]:
    """The caller's agency's agents, then published agents of other agencies."""
    own = session.execute(select(Agent, Agency.code).join(Agency, Agency.id == Agent.agency_id)
                          .where(Agent.agency_id == principal.agency_id).order_by(Agent.name))
    result = [_definition(row, code) for row, code in own]
    shared = session.execute(
        _published_agents().add_columns(Agency.code).join(Agency, Agency.id == SharedAsset.agency_id)
        .where(SharedAsset.agency_id != principal.agency_id).order_by(SharedAsset.name))
    result += [_shared_definition(int(asset.source_ref), asset, json.loads(document), code)
               for asset, document, code in shared if asset.source_ref.isdigit()]
    return result


def readable_collections(session: Session, principal: Principal, definition: Definition) -> tuple[list[int], int]:
    """The agent's collections the caller may read, and how many were left out."""
    if not definition.collections:
        return [], 0
    ids = list(session.scalars(kc.readable(principal).where(Collection.id.in_(definition.collections))
                               .with_only_columns(Collection.id)))
    kept = [i for i in definition.collections if i in ids]
    return kept, len(definition.collections) - len(kept)


def _resolve_collections(session: Session, principal: Principal, refs: list[int | str]) -> list[int]:
    """Ids of collections the author may read (404 for one they cannot: nothing is stored)."""
    return list(dict.fromkeys(kc.get_readable(session, principal, ref).id for ref in refs))


def _own_row(session: Session, principal: Principal, agent_id: int) -> Agent:
    row = session.get(Agent, agent_id)
    if row is None or row.agency_id != principal.agency_id:
        raise _no_agent(agent_id)
    return row


def _fill(row: Agent, spec: AgentSpec, collection_ids: list[int]) -> None:
    row.name, row.description, row.instructions = spec.name, spec.description, spec.instructions
    row.collections = json.dumps(collection_ids)
    row.services = json.dumps(spec.services, ensure_ascii=False)
    row.connectors = json.dumps(spec.connectors, ensure_ascii=False)
    row.model, row.examples = spec.model, json.dumps(spec.examples, ensure_ascii=False)
    row.updated_at = utcnow()


def _name_taken(name: str) -> AlreadyExists:
    return AlreadyExists(f"이 기관에 '{name}' 에이전트가 이미 있습니다. 다른 이름을 쓰세요.",
                         f"an agent named '{name}' already exists in this agency")


def create(session: Session, principal: Principal, spec: AgentSpec, *, forked_from: int | None = None,
           forked_version: int | None = None, audit: bool = True) -> Definition:
    """A new agent in the caller's agency (audited in the same transaction)."""
    require(principal, "agents.create")
    spec = spec.validated()
    row = Agent(agency_id=principal.agency_id, created_by=principal.user_id, forked_from=forked_from,
                forked_version=forked_version)
    _fill(row, spec, _resolve_collections(session, principal, spec.collections))
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        raise _name_taken(spec.name) from None
    if audit:
        trail.record_by(session, principal, "agents.create", {"agent": row.id, "name": row.name})
    return _definition(row, principal.agency_code)


def update(session: Session, principal: Principal, agent_id: int, spec: AgentSpec) -> Definition:
    row = _own_row(session, principal, agent_id)
    require(principal, "agents.change", row)
    spec = spec.validated()
    _fill(row, spec, _resolve_collections(session, principal, spec.collections))
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise _name_taken(spec.name) from None
    trail.record_by(session, principal, "agents.update", {"agent": row.id, "name": row.name})
    return _definition(row, principal.agency_code)


def delete(session: Session, principal: Principal, agent_id: int) -> None:
    """Delete an agent; its library entry is withdrawn with it (it names this agent). Forks other
    agencies made are copies and keep working."""
    row = _own_row(session, principal, agent_id)
    require(principal, "agents.change", row)
    for asset in session.scalars(select(SharedAsset).where(SharedAsset.kind == "agent",
                                                           SharedAsset.source_ref == str(agent_id))):
        asset.withdrawn, asset.updated_at = True, utcnow()
    session.delete(row)
    trail.record_by(session, principal, "agents.delete", {"agent": agent_id, "name": row.name})


def for_service(session: Session, principal: Principal, ref: str, service_id: str,
                inputs: dict[str, Any]) -> tuple[Definition, str | None, dict[str, Any]]:
    """Run a work service as an agent: only the services and connectors it lists. Returns the
    agent, the model to use (the agent itself for `qa`, so its instructions and collections
    apply; its preferred model otherwise) and the inputs, its defaults filled in."""
    definition = usable(session, principal, ref)
    if service_id not in definition.services:
        offered = ", ".join(definition.services) or "없음"
        raise AgentError(f"에이전트 '{definition.name}'은(는) '{service_id}' 서비스를 쓰지 않습니다 "
                         f"(쓰는 서비스: {offered}).",
                         f"agent '{definition.name}' does not use the service '{service_id}'")
    inputs = dict(inputs)
    if service_id == "act":
        if not inputs.get("connector") and len(definition.connectors) == 1:
            inputs["connector"] = definition.connectors[0]
        if inputs.get("connector") not in definition.connectors:
            offered = ", ".join(definition.connectors) or "없음"
            raise AgentError(f"에이전트 '{definition.name}'은(는) 연계 API '{inputs.get('connector')}'을(를) "
                             "쓰지 않습니다 "
                             f"(쓰는 연계 API: {offered}).", "the agent does not use this connector")
    if service_id == "qa":
        inputs.setdefault("collections", [])  # the agent brings its own
    model = definition.ref if service_id == "qa" else definition.model
    return definition, model, inputs
