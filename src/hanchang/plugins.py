"""Every extension point of Hanchang, declared here; plugins register through entry points.

A Python package adds to Hanchang without changing it by declaring entry points in its
`pyproject.toml`, e.g.

    [project.entry-points."hanchang.parsers"]
    odt = "my_agency_formats:ODT_PARSER"

Each group below says what its entry points must name. Built-ins are registered the same
way in their own modules (`gateway.backends`, `knowledge.parsers`, `guard.recognizers`,
`assist.services`, `assist.connectors`), so a plugin is an equal, and may not take a built-in
name: a clash stops the start with a clear message rather than silently replacing one.
Whatever a plugin adds still runs behind the gateway, the grade policy, the personal-data
guard and the audit trail — an extension point is never a side door.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import Any

BACKENDS = "hanchang.backends"  # name = the `backend:` of a model in the config; value: (ModelSpec) -> Backend
PARSERS = "hanchang.parsers"  # value: knowledge.parsers.base.ParserPlugin (kind, extensions, parse)
RECOGNIZERS = "hanchang.recognizers"  # value: guard.recognizers.Recognizer (a Korean PII type)
SERVICES = "hanchang.services"  # value: assist.services.Service (a work service)
CONNECTORS = "hanchang.connectors"  # value: assist.connectors.ConnectorFormat (a description format)

GROUPS = (BACKENDS, PARSERS, RECOGNIZERS, SERVICES, CONNECTORS)


class PluginError(Exception):
    """A plugin that cannot be used: it names the entry point and what is wrong."""


@cache
def load(group: str) -> tuple[tuple[str, Any], ...]:
    """(entry-point name, loaded object) for each plugin in `group`, in a stable order."""
    if group not in GROUPS:
        raise ValueError(f"unknown extension point {group!r}; see hanchang.plugins.GROUPS")
    found = []
    for entry in sorted(entry_points(group=group), key=lambda e: e.name):
        try:
            found.append((entry.name, entry.load()))
        except Exception as exc:
            raise PluginError(f"plugin {entry.name} ({entry.value}) in {group} cannot be loaded: {exc}") from exc
    return tuple(found)


def load_typed(group: str, kind: type) -> list[tuple[str, Any]]:
    """`load`, checking that each plugin is a `kind`."""
    plugins = list(load(group))
    for name, value in plugins:
        if not isinstance(value, kind):
            raise PluginError(f"plugin {name} in {group} is not a {kind.__name__}")
    return plugins


def merged(group: str, builtin: dict[str, Any], plugins: list[tuple[str, Any]]) -> dict[str, Any]:
    """Built-ins plus plugins by name; a plugin may not take a built-in's (or another's) name."""
    out = dict(builtin)
    for name, value in plugins:
        if name in out:
            raise PluginError(f"plugin {name} in {group} takes a name already in use; rename its entry point")
        out[name] = value
    return out
