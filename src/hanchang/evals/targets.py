"""What an evaluation measures: a model, a model grounded on collections, an agent, or a work
service (translation against reference translations: the SLO table's BLEU row) — called through
the same paths users get (`assist.answer`, the services), so grade policy, personal-data guard,
usage and audit all apply to every item, and what is scored is what a user would have seen."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from hanchang.assist import answer, qa
from hanchang.assist.platform import Platform
from hanchang.assist.services.base import ServiceContext
from hanchang.core.errors import HanchangError, InvalidInput
from hanchang.core.grades import Grade
from hanchang.core.policy import GradedItem
from hanchang.core.principal import Principal
from hanchang.evals.datasets import Item
from hanchang.evals.scorers import render

SAMPLING_KEYS = ("temperature", "top_p", "seed", "max_completion_tokens", "max_tokens")
ENDPOINT = "evals.run"  # how usage rows and audit records name these calls


@dataclass(frozen=True)
class Target:
    model: str  # a model name or alias, or "agent:<id>" ("" with a service: the default model)
    collections: list[str | int] = field(default_factory=list)
    sampling: dict[str, Any] = field(default_factory=dict)
    input_messages: list[dict[str, Any]] | None = None  # OpenAI's template ({{ item.input }} …)
    service: str | None = None  # a work service (translate, summarize, …) instead of a chat
    service_inputs: dict[str, str] = field(default_factory=dict)  # its inputs, as templates

    def as_json(self) -> dict[str, Any]:
        return {"model": self.model, "collections": self.collections, "sampling": self.sampling,
                **({"input_messages": self.input_messages} if self.input_messages else {}),
                **({"service": self.service, "service_inputs": self.service_inputs} if self.service else {})}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Target:
        return cls(raw["model"], list(raw.get("collections") or []), dict(raw.get("sampling") or {}),
                   raw.get("input_messages"), raw.get("service"), dict(raw.get("service_inputs") or {}))


def parse_service(platform: Platform, principal: Principal, model: Any, service: Any,
                  service_inputs: Any) -> Target:
    """A work service as the target: its inputs are templates over the item ({{ item.question }})."""
    found = platform.services.get(service) if isinstance(service, str) else None
    if found is None or not found.offered_to(principal):
        raise InvalidInput(f"서비스 '{service}'이(가) 없습니다. 평가할 수 있는 서비스: "
                           f"{', '.join(sorted(platform.services))}", f"no service '{service}'")
    inputs = service_inputs if service_inputs is not None else {found.fields[0].name: "{{ item.question }}"}
    if not isinstance(inputs, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in inputs.items()):
        raise InvalidInput("service_inputs는 입력 이름과 템플릿 문자열의 객체입니다.",
                           "service_inputs maps input names to template strings")
    if model is not None and not isinstance(model, str):
        raise InvalidInput("model은 문자열입니다.", "model must be a string")
    return Target((model or "").strip(), service=found.id, service_inputs=dict(inputs))


def parse_target(model: Any, collections: Any, sampling: Any, input_messages: Any) -> Target:
    if not isinstance(model, str) or not model.strip():
        raise InvalidInput("평가할 model(모델 이름, 별칭 또는 agent:<id>)이 필요합니다.",
                           "a model (name, alias or agent:<id>) to evaluate is required")
    if collections is not None and (not isinstance(collections, list) or
                                    not all(isinstance(c, str | int) for c in collections)):
        raise InvalidInput("collections는 지식베이스 이름이나 번호의 목록입니다.",
                           "collections is a list of knowledge base names or ids")
    sampling = {k: v for k, v in (sampling or {}).items() if k in SAMPLING_KEYS and v is not None}
    template = None
    if input_messages is not None:
        raw = input_messages.get("template") if isinstance(input_messages, dict) else input_messages
        if not isinstance(raw, list) or not raw or not all(
                isinstance(m, dict) and isinstance(m.get("content"), str) and m.get("role") in
                ("system", "developer", "user", "assistant") for m in raw):
            raise InvalidInput("input_messages.template은 role과 content(문자열)가 있는 메시지 목록입니다.",
                               "input_messages.template is a list of messages with a role and string content")
        template = [{"role": "system" if m["role"] == "developer" else m["role"], "content": m["content"]}
                    for m in raw]
    return Target(model.strip(), list(collections or []), sampling, template)


def _messages(target: Target, item: Item) -> list[dict[str, Any]]:
    if target.input_messages:
        return [{"role": m["role"], "content": render(m["content"], item, {})} for m in target.input_messages]
    messages = [{"role": "user", "content": item.question}]
    if item.context:  # KorQuAD-style: the item brings the passage to answer from
        messages.insert(0, {"role": "system", "content": f"{qa.INSTRUCTIONS}\n\n[자료]\n[1] {item.context}"})
    return messages


async def _service_item(platform: Platform, principal: Principal, target: Target, item: Item,
                        grade: Grade) -> dict[str, Any]:
    service = platform.services[target.service]
    raw = {name: render(template, item, {}) for name, template in target.service_inputs.items()}
    started = time.perf_counter()
    sample: dict[str, Any] = {"input": [{"role": "user", "content": json.dumps(raw, ensure_ascii=False)}],
                              "model": target.model or platform.gateway.registry.requested(None),
                              "service": service.id}
    try:
        result = await service.run(ServiceContext(platform, principal, grade, target.model or None),
                                   service.validate(raw))
    except HanchangError as exc:
        return {**sample, "output_text": "", "latency_s": round(time.perf_counter() - started, 3),
                "error": {"code": exc.code, "status": exc.status, "message": exc.message[:500]}}
    return {**sample, "output_text": result.text, "latency_s": round(time.perf_counter() - started, 3),
            "citations": [{"index": c.get("index"), "text": c.get("text") or c.get("snippet") or ""}
                          for c in result.citations if isinstance(c, dict) and "index" in c],
            "error": None}


async def answer_item(platform: Platform, principal: Principal, target: Target, item: Item,
                      grade: Grade) -> dict[str, Any]:
    """The sample: what the target answered, its citations and checks, usage and time, or the error."""
    if target.service:
        return await _service_item(platform, principal, target, item, grade)
    messages = _messages(target, item)
    body = {"model": target.model, "messages": messages, **target.sampling}
    carried = [GradedItem("attachment", f"eval:{item.id}", grade)] if item.context else []
    request = answer.AnswerRequest(body, grade, [], list(target.collections), carried=carried, endpoint=ENDPOINT)
    started = time.perf_counter()
    sample: dict[str, Any] = {"input": messages, "model": target.model}
    try:
        done = await answer.complete(platform, principal, request)
    except HanchangError as exc:  # refused (grade, personal data), a model away: the item errs, the run goes on
        return {**sample, "output_text": "", "latency_s": round(time.perf_counter() - started, 3),
                "error": {"code": exc.code, "status": exc.status, "message": exc.message[:500]}}
    result = done.result
    choice = (result.get("choices") or [{}])[0]
    citations = done.citations
    if item.context and citations is None:
        citations = [{"index": 1, "text": item.context}]
    return {**sample, "model": result.get("model") or target.model, "output_text": done.text,
            "finish_reason": choice.get("finish_reason"), "usage": result.get("usage") or {},
            "latency_s": round(time.perf_counter() - started, 3),
            "citations": [{"index": c["index"], "text": c.get("text") or c.get("snippet") or "",
                           "title": c.get("title"), "section": c.get("section")} for c in citations or ()],
            "answer_check": (result.get("hanchang") or {}).get("answer_check"),
            "no_sources": done.no_sources, "error": None}


async def ask_judge(platform: Platform, principal: Principal, model: str, grade: Grade, prompt: str) -> str:
    """One question to the judge model, through the gateway at the set's grade."""
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "temperature": 0, "max_tokens": 16}
    done = await answer.complete(platform, principal, answer.AnswerRequest(body, grade, endpoint=ENDPOINT))
    return done.text
