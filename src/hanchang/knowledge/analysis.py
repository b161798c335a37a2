"""Korean analysis for retrieval, with Kiwi.

Two lexical views of a text: content morphemes (nouns, verb/adjective stems, foreign words,
numbers, roots) plus adjacent-morpheme pairs, which match phrasings; and character bigrams
of each word, which still match names, codes and words Kiwi splits differently. Fused with
reciprocal rank fusion they beat either alone (benchmarks/retrieval_korquad.py).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from itertools import pairwise

_CONTENT_TAGS = ("VV", "VA", "SL", "SN", "SH", "XR", "MM", "NR", "NP")
# Question words and light nouns/verbs that carry no topic.
STOP_FORMS = frozenset({"무엇", "언제", "어디", "누구", "몇", "어느", "무슨", "어떤", "얼마", "왜",
                        "어떻게", "것", "수", "이", "그", "하", "되", "있", "없", "같"})
_SPACES = re.compile(r"\s+")


class KoreanAnalyzer:
    """Thread-safe, lazily loaded Kiwi (loading takes ~1 s and ~100 MB)."""

    def __init__(self, num_workers: int = -1):  # -1: all cores (batch analysis needs workers)
        self._kiwi = None
        self._lock = threading.Lock()
        self._workers = num_workers

    def _get(self):
        if self._kiwi is None:
            with self._lock:
                if self._kiwi is None:
                    from kiwipiepy import Kiwi

                    self._kiwi = Kiwi(num_workers=self._workers)
        return self._kiwi

    def morphemes_many(self, texts: list[str]) -> list[list[str]]:
        if not texts:
            return []
        kiwi = self._get()
        return [_content(tokens) for tokens in kiwi.tokenize(texts)]

    def morphemes(self, text: str) -> list[str]:
        return _content(self._get().tokenize(text))


def _content(tokens: Iterable) -> list[str]:
    out = []
    for token in tokens:
        if token.tag.startswith("NN") or token.tag in _CONTENT_TAGS:
            # Kiwi may return a multi-word proper noun ("제럴드 포드"): keep it one term.
            form = token.form.lower().replace(" ", "")
            if form not in STOP_FORMS:
                out.append(form)
    return out


def with_pairs(morphemes: list[str]) -> list[str]:
    """Morphemes plus each adjacent pair (`데이터_보안`), which rewards matching phrasings."""
    return morphemes + [f"{a}_{b}" for a, b in pairwise(morphemes)]


def char_bigrams(text: str) -> list[str]:
    grams: list[str] = []
    for word in _SPACES.sub(" ", text.lower()).split():
        if len(word) < 2:
            grams.append(word)
        else:
            grams.extend(word[i:i + 2] for i in range(len(word) - 1))
    return grams


_shared = KoreanAnalyzer()


def shared_analyzer() -> KoreanAnalyzer:
    return _shared
