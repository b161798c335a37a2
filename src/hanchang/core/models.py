"""How a language model is described to the rest of the platform."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from hanchang.core.grades import Grade

# The model the embedded default runs (Qwen2.5-Coder-0.5B-Instruct, packaged on PyPI).
EMBEDDED_MODEL_NAME = "qwen2.5-coder-0.5b-instruct"


class Zone(str, Enum):
    INTERNAL = "internal"  # 내부망: runs inside the agency's network
    EXTERNAL = "external"  # 외부망: commercial clouds and anything outside

    @property
    def korean(self) -> str:
        return "내부망" if self is Zone.INTERNAL else "외부망"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    backend: str  # "openai" | "llamacpp"
    zone: Zone
    max_grade: Grade
    context_window: int = 4096
    base_url: str | None = None
    path: str | None = None
    api_key_env: str | None = None
    upstream_model: str | None = None  # name to send upstream, when it differs from `name`
    aliases: tuple[str, ...] = ()
    fallbacks: tuple[str, ...] = ()
    kind: str = "chat"  # "chat" | "embedding"
    timeout_s: float = 60.0
    max_retries: int = 2
    # Price in won per 1,000 tokens read (input) and written (output); 0 for own hardware.
    price_in: float = 0.0
    price_out: float = 0.0
    extra: dict = field(default_factory=dict, hash=False, compare=False)

    def cost_won(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.price_in + tokens_out * self.price_out) / 1000

    def clears(self, grade: Grade) -> bool:
        return grade <= self.max_grade

    def describe_korean(self) -> str:
        """Plain words for the window, e.g. '내부망 모델 · 기밀까지'."""
        return f"{self.zone.korean} 모델 · {self.max_grade.korean}까지"


@dataclass
class ModelSpeed:
    """Measured speeds in tokens per second (moving averages); None until measured."""

    prefill_tps: float | None = None  # reading the prompt
    decode_tps: float | None = None  # writing the answer

    def learn(self, attribute: str, value: float) -> None:
        old = getattr(self, attribute)
        setattr(self, attribute, value if old is None else 0.7 * old + 0.3 * value)
