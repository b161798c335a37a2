"""The work services of the guideline (2.2.1) as small pipelines, declared in one registry.

Every service builds ordinary gateway calls, so the grade policy, the personal-data guard,
limits, usage figures and the audit trail apply exactly as for chat — no side door. An
agency adds its own without code in the config (`services.custom`), or as a plugin registering a
`Service` under the entry-point group `hanchang.services` (see `custom.py`).
"""

from __future__ import annotations

from hanchang.assist.services.act import ACT
from hanchang.assist.services.analyze import ANALYZE
from hanchang.assist.services.base import Field, Service, ServiceContext, ServiceResult
from hanchang.assist.services.counsel import COUNSEL
from hanchang.assist.services.drafting import DRAFT
from hanchang.assist.services.qa_service import QA
from hanchang.assist.services.summarize import SUMMARIZE
from hanchang.assist.services.translate import TRANSLATE

SERVICES: dict[str, Service] = {s.id: s for s in (QA, SUMMARIZE, DRAFT, TRANSLATE, COUNSEL, ANALYZE, ACT)}

__all__ = ["SERVICES", "Field", "Service", "ServiceContext", "ServiceResult"]
