"""Which personal-data mode a model's zone gets: the rule, once. The guard applies it."""

from __future__ import annotations

from enum import Enum

from hanchang.core.models import Zone


class PiiMode(str, Enum):
    ALLOW = "allow"  # send as is, but count
    MASK = "mask"  # typed placeholders, never restored
    PSEUDONYMIZE = "pseudonymize"  # placeholders out, real values restored in the answer
    BLOCK = "block"  # refuse the request


# The defaults: inside the government network data may pass (it is counted and audited);
# outside it, personal data never leaves as itself.
DEFAULT_INTERNAL = PiiMode.ALLOW
DEFAULT_EXTERNAL = PiiMode.PSEUDONYMIZE


def pii_mode_for(zone: Zone, *, internal: PiiMode = DEFAULT_INTERNAL,
                 external: PiiMode = DEFAULT_EXTERNAL) -> PiiMode:
    """The mode for a model in `zone`, given the operator's choice per zone (config `pii:`)."""
    return internal if zone is Zone.INTERNAL else external


def tool_call_modes(zone: Zone) -> tuple[PiiMode, PiiMode]:
    """(arguments, results) modes for a call to an agency's tool server (an MCP connector).

    A tool needs its arguments exactly, so personal data bound for a server outside the network
    refuses the call instead of being masked; what comes back from outside is masked before
    anyone reads it. Inside, both are counted and audited."""
    return (PiiMode.ALLOW, PiiMode.ALLOW) if zone is Zone.INTERNAL else (PiiMode.BLOCK, PiiMode.MASK)
