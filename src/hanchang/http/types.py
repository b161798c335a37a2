"""Parameter types both doors (the API and the window) validate the same way."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import BeforeValidator

from hanchang.core.grades import Grade
from hanchang.core.ids import MAX_ID

# A database id in a path: beyond what the id columns hold (INTEGER: 32 bits on PostgreSQL) it
# names nothing — a 422, not the database's "out of range" as a 500.
DbId = Annotated[int, Path(ge=1, le=MAX_ID)]

# A grade as users write it: O/S/C in any case, or 공개/민감/기밀.
GradeIn = Annotated[Grade, BeforeValidator(Grade.parse)]
OptionalGradeIn = Annotated[Grade | None, BeforeValidator(lambda v: None if v is None else Grade.parse(v))]
