"""Apply the personal-data mode of a model's zone to a chat request before it leaves."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hanchang.guard.pii import count_by_type, scan
from hanchang.guard.recognizers import LABELS_KO
from hanchang.guard.vault import PseudonymVault


class PiiMode(str, Enum):
    ALLOW = "allow"  # send as is, but count
    MASK = "mask"  # typed placeholders, never restored
    PSEUDONYMIZE = "pseudonymize"  # placeholders out, real values restored in the answer
    BLOCK = "block"  # refuse the request


class PersonalDataBlocked(Exception):
    def __init__(self, counts: dict[str, int], model: str):
        listed = ", ".join(f"{LABELS_KO[k]} {v}건" for k, v in sorted(counts.items()))
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


def _texts(message: dict[str, Any]):
    """(setter, text) pairs for every text part of a message."""
    content = message.get("content")
    if isinstance(content, str):
        yield (lambda value, m=message: m.__setitem__("content", value)), content
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                yield (lambda value, p=part: p.__setitem__("text", value)), part["text"]


def guard_request(body: dict[str, Any], mode: PiiMode, model_name: str) -> GuardedRequest:
    """Scan every message; count, and mask/pseudonymize/block as the mode says."""
    vault = PseudonymVault()
    counts: dict[str, int] = {}
    messages = [dict(m) for m in body["messages"]]
    for message in messages:
        if isinstance(message.get("content"), list):
            message["content"] = [dict(p) if isinstance(p, dict) else p for p in message["content"]]
        for set_text, text in list(_texts(message)):
            findings = scan(text)
            for kind, n in count_by_type(findings).items():
                counts[kind] = counts.get(kind, 0) + n
            if findings and mode in (PiiMode.MASK, PiiMode.PSEUDONYMIZE):
                set_text(vault.replace(text, findings))
    if counts and mode is PiiMode.BLOCK:
        raise PersonalDataBlocked(counts, model_name)
    if counts and mode in (PiiMode.MASK, PiiMode.PSEUDONYMIZE):
        messages.insert(0, {"role": "system", "content": PLACEHOLDER_NOTE})
        return GuardedRequest({**body, "messages": messages}, mode, counts,
                              vault if mode is PiiMode.PSEUDONYMIZE else None)
    return GuardedRequest(body, mode, counts)
