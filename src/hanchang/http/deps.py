"""FastAPI dependencies both doors use: the platform and the caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from hanchang.assist.platform import Platform
from hanchang.core.principal import Principal
from hanchang.http.auth import require_principal


def platform_of(request: Request) -> Platform:
    """The platform this server process built at start-up (`hanchang.server`)."""
    return request.app.state.platform


PlatformDep = Annotated[Platform, Depends(platform_of)]
Caller = Annotated[Principal, Depends(require_principal)]
