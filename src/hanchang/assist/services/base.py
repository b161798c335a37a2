"""What a service is: an id, Korean and English names, its inputs, and an async `run`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from hanchang.assist.chat import chat_call
from hanchang.core.errors import HanchangError
from hanchang.core.grades import Grade
from hanchang.core.principal import Principal
from hanchang.gateway.router import Gateway

if TYPE_CHECKING:  # the platform holds the services catalogue: a type-only import
    from hanchang.assist.platform import Platform


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # text | longtext | choice | collections | file
    label_ko: str
    required: bool = True
    choices: tuple[str, ...] = ()
    choice_labels: tuple[str, ...] = ()  # Korean labels for `choices`, same order
    choices_from: str = ""  # an API path listing the choices when they differ per agency


@dataclass
class ServiceContext:
    platform: Platform
    principal: Principal
    grade: Grade
    model: str | None
    agent_id: int | None = None  # run as this agent (its usage and audit name it)

    @property
    def gateway(self) -> Gateway:
        return self.platform.gateway

    @property
    def model_name(self) -> str:
        """The model the user chose, or the default."""
        return self.gateway.registry.requested(self.model)

    async def complete(self, service_id: str, messages: list[dict[str, Any]], max_tokens: int = 1024,
                       schema: dict[str, Any] | None = None) -> str:
        """One model call through the gateway (policy, guard, limits, audit), returning text.

        With `schema`, the model is asked for JSON matching it (OpenAI `response_format`
        json_schema; llama.cpp turns it into a grammar, so even a small model answers in shape).
        """
        body: dict[str, Any] = {"model": self.model_name, "messages": messages,
                                "max_tokens": max_tokens, "temperature": 0.2}
        if schema is not None:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": f"{service_id}_plan", "schema": schema}}
        call = chat_call(self.principal, body, self.grade, [], endpoint=f"service.{service_id}")
        call.agent_id = self.agent_id
        result = await self.gateway.chat(call)
        return (result["choices"][0]["message"].get("content") or "").strip()

    def context_window(self) -> int:
        return self.gateway.registry.get(self.model_name).context_window


@dataclass
class ServiceResult:
    text: str
    citations: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ServiceInputError(HanchangError):
    """Inputs a user can fix; the message is Korean."""

    status, code = 400, "invalid_service_input"


@dataclass(frozen=True)
class Service:
    id: str
    name_ko: str
    name_en: str
    description_ko: str
    fields: tuple[Field, ...]
    run: Callable[[ServiceContext, dict[str, Any]], Awaitable[ServiceResult]]
    agencies: tuple[str, ...] = ()  # agency codes that may use it; empty: every agency

    def offered_to(self, principal: Principal) -> bool:
        return not self.agencies or principal.agency_code in self.agencies

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "name_ko": self.name_ko, "name_en": self.name_en,
                "description_ko": self.description_ko, "inputs": [asdict(f) for f in self.fields]}

    def validate(self, inputs: dict[str, Any]) -> dict[str, Any]:
        clean = {}
        for f in self.fields:
            value = inputs.get(f.name)
            if f.required and (value is None or (isinstance(value, str) and not value.strip())):
                raise ServiceInputError(f"'{f.label_ko}' 항목을 입력하세요. ({f.name} is required)")
            if value is not None and f.choices and value not in f.choices:
                raise ServiceInputError(f"'{f.label_ko}'은(는) {', '.join(f.choices)} 중 하나여야 합니다.")
            clean[f.name] = value
        return clean
