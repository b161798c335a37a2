"""Services an agency adds: instruction services from the config, and code from plugins.

- `services.custom` in the config: an id, Korean name, instructions and the agencies that see it
  (e.g. "민원 답변 다듬기"); it runs the instructions on what the user writes, through the gateway.
- Python packages may register `Service` objects under the entry-point group `hanchang.services`.

Neither may take a built-in id; both go through the same gateway, policy, guard and audit.
"""

from __future__ import annotations

from typing import Any

from hanchang import plugins
from hanchang.assist.services.base import Field, Service, ServiceContext, ServiceResult
from hanchang.config import CustomServiceConfig


class ServiceConflict(ValueError):
    pass


def from_config(config: CustomServiceConfig) -> Service:
    async def run(ctx: ServiceContext, inputs: dict[str, Any]) -> ServiceResult:
        text = await ctx.complete(config.id, [{"role": "system", "content": config.instructions},
                                              {"role": "user", "content": inputs["text"]}],
                                  max_tokens=config.max_tokens)
        return ServiceResult(text, meta={"custom": True})

    return Service(config.id, config.name_ko, config.name_en or config.id, config.description_ko,
                   (Field("text", "longtext", config.input_label_ko),), run, agencies=tuple(config.agencies))


def from_plugins() -> list[Service]:
    try:
        return [service for _, service in plugins.load_typed(plugins.SERVICES, Service)]
    except plugins.PluginError as exc:
        raise ServiceConflict(str(exc)) from None


def catalogue(builtin: dict[str, Service], custom: list[CustomServiceConfig]) -> dict[str, Service]:
    """Built-in services, then plugins, then the config's own; an id may be used once."""
    services = dict(builtin)
    for service in [*from_plugins(), *(from_config(c) for c in custom)]:
        if service.id in services:
            raise ServiceConflict(f"service id '{service.id}' is already taken; choose another id")
        services[service.id] = service
    return services
