"""Apply the personal-data mode of a model's zone to a chat request before it leaves."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hanchang.core.pii_modes import PiiMode
from hanchang.guard.pii import count_by_type, scan
from hanchang.guard.recognizers import labels_ko
from hanchang.guard.vault import PseudonymVault


class PersonalDataBlocked(Exception):
    def __init__(self, counts: dict[str, int], model: str):
        listed = ", ".join(f"{labels_ko()[k]} {v}건" for k, v in sorted(counts.items()))
        self.counts = counts
        self.message = (
            f"요청에 개인정보({listed})가 포함되어 있어 모델 '{model}'에 보낼 수 없습니다. "
            "개인정보를 지우거나 내부망 모델을 선택하세요. "
            f"(Personal data found; model '{model}' does not accept it.)"
        )
        super().__init__(self.message)


PLACEHOLDER_NOTE = (
    "일부 개인정보는 [주민등록번호1], [전화번호1] 같은 자리표시자로 바뀌어 있습니다. "
    "답변에서 필요하면 자리표시자를 그대로 쓰세요."
)


@dataclass
class GuardedRequest:
    body: dict[str, Any]
    mode: PiiMode
    counts: dict[str, int] = field(default_factory=dict)
    vault: PseudonymVault | None = None  # only when values must be restored


# Values the upstream must receive exactly: protocol words and identifiers, never free text.
_STRUCTURAL = frozenset({"model", "role", "type", "id", "tool_call_id", "object", "finish_reason",
                         "encoding_format", "detail", "$schema", "$ref", "format", "tool_choice"})


class InputNotInspectable(Exception):
    """Input the guard cannot read (token ids), bound for a zone whose mode needs reading it."""

    def __init__(self, model: str):
        self.message = (
            f"토큰 ID 배열은 개인정보 검사를 할 수 없어 모델 '{model}'에 보낼 수 없습니다. 텍스트로 보내세요. "
            f"(Token-id input cannot be checked for personal data, so model '{model}' does not accept it; "
            "send text — with LangChain's OpenAIEmbeddings, set check_embedding_ctx_length=False.)")
        super().__init__(self.message)


MAX_DEPTH = 64  # OpenAI bodies nest a few levels; JSON schemas a dozen or two


class InputTooDeep(Exception):
    def __init__(self, limit: int):
        self.message = (f"요청의 JSON이 {limit}단계보다 깊게 중첩되어 있어 처리할 수 없습니다. "
                        f"(The request nests deeper than {limit} levels; flatten it.)")
        super().__init__(self.message)


def _token_ids(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(v, int) or (isinstance(v, list) and all(isinstance(i, int) for i in v)) for v in value)


class _Walker:
    """Rebuilds a request body with every string scanned: message text, tool-call arguments,
    names, tool descriptions, `user`, metadata, JSON schemas (keys too) — all of it."""

    def __init__(self, mode: PiiMode):
        self.mode = mode
        self.vault = PseudonymVault()
        self.counts: dict[str, int] = {}

    def text(self, value: str) -> str:
        if value.startswith("data:"):  # an inline file (image): opaque, passed as sent
            return value
        findings = scan(value)
        if not findings:
            return value
        for kind, n in count_by_type(findings).items():
            self.counts[kind] = self.counts.get(kind, 0) + n
        return self.vault.replace(value, findings) if self.mode in (PiiMode.MASK, PiiMode.PSEUDONYMIZE) else value

    def walk(self, value: Any, key: str = "", depth: int = 0) -> Any:
        if isinstance(value, str):
            return value if key in _STRUCTURAL else self.text(value)
        if depth > MAX_DEPTH and isinstance(value, dict | list):
            raise InputTooDeep(MAX_DEPTH)
        if isinstance(value, dict):
            return {(self.text(k) if isinstance(k, str) else k): self.walk(v, k, depth + 1) for k, v in value.items()}
        if isinstance(value, list):
            return [self.walk(v, key, depth + 1) for v in value]
        return value


def guard_request(body: dict[str, Any], mode: PiiMode, model_name: str) -> GuardedRequest:
    """Scan every string of the body; count, and mask/pseudonymize/block as the mode says."""
    if mode is not PiiMode.ALLOW and _token_ids(body.get("input")):
        raise InputNotInspectable(model_name)
    walker = _Walker(mode)
    guarded = walker.walk(body)
    counts = walker.counts
    if counts and mode is PiiMode.BLOCK:
        raise PersonalDataBlocked(counts, model_name)
    if counts and mode in (PiiMode.MASK, PiiMode.PSEUDONYMIZE):
        if isinstance(guarded.get("messages"), list):
            guarded["messages"].insert(0, {"role": "system", "content": PLACEHOLDER_NOTE})
        return GuardedRequest(guarded, mode, counts, walker.vault if mode is PiiMode.PSEUDONYMIZE else None)
    return GuardedRequest(body, mode, counts)
