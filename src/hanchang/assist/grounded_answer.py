"""What the platform adds to a grounded answer, whole or streamed: citations it can vouch for,
the source sentence quoted, and a flag on numbers no source holds.

A 0.5B model asked to write `[1]` does so in about one answer in ten, and sometimes states a
number found nowhere (`179m` for 79 m). So the platform does it: each sentence of the answer is
matched on Korean morphemes with the passage that supports it (`knowledge.support`) and gets
that passage's marker; a marker the model wrote that no passage supports is dropped. The
passage sentence that best matches the question and the answer follows, quoted and cited, so
the reader sees the fact in the source's own words. Numbers the answer states that neither the
passages nor the question hold are reported (`check`), and the answer says `확인 필요`.
Streamed answers go out sentence by sentence, each with its marker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from hanchang.knowledge import support
from hanchang.knowledge.analysis import STOP_FORMS, shared_analyzer
from hanchang.knowledge.excerpts import GAP, sentence_units

QUOTE_MAX = 220  # characters of a quoted source sentence
MIN_SENTENCE = 6  # shorter pieces (a heading, "네.") get no marker
QUOTE_QUESTION_SHARE = 0.34  # a quote must hold at least this share of the question's terms
QUOTE_NEW_TERMS = 1  # a quote that adds at most this many words to the answer repeats it: left out
RELEVANT_SHARE = 0.25  # below this share of the question's terms in every passage: nothing relevant
_END = re.compile(r"(?<=[.!?。])\s|\n")
_TRAILING_PUNCT = re.compile(r"([.!?。]+)$")
NUMBERS_NOTE = "※ 확인 필요: 자료에서 찾을 수 없는 숫자가 있습니다({numbers}). 원문을 확인하세요."
RETRY_HINT = "숫자·날짜·단위는 [자료]에 적힌 그대로만 쓰고, 자료에 없는 숫자는 쓰지 마세요."


@dataclass
class Check:
    """What the platform checked, for the API's `hanchang.answer_check` and the window."""

    cited: list[int] = field(default_factory=list)  # passage numbers cited, in order
    uncited_sentences: int = 0
    markers_dropped: int = 0  # markers the model wrote that no passage supports
    quote: dict[str, Any] | None = None  # {index, text}
    invented_numbers: list[str] = field(default_factory=list)
    retried: bool = False

    @property
    def needs_check(self) -> bool:
        return bool(self.invented_numbers)

    def report(self) -> dict[str, Any]:
        return {"cited": self.cited, "uncited_sentences": self.uncited_sentences,
                "markers_dropped": self.markers_dropped, "quote": self.quote,
                "invented_numbers": self.invented_numbers, "retried": self.retried,
                "needs_check": self.needs_check}


class Grounding:
    """The passages of one grounded answer (numbered as the prompt numbered them) and its question."""

    def __init__(self, question: str, passages: list[tuple[int, str]]):
        self.question = question
        self.numbers = [number for number, _ in passages]
        self.texts = [text.replace(GAP, "\n") for _, text in passages]
        self.index = support.SupportIndex(self.texts)
        self.check = Check()

    def relevant(self) -> bool:
        """Some passage holds at least `RELEVANT_SHARE` of the question's content morphemes."""
        return not self.texts or any(self.index.of(self.question, p) >= RELEVANT_SHARE
                                     for p in range(len(self.texts)))

    # -- sentences --------------------------------------------------------------------------
    def cite(self, sentence: str) -> str:
        """The sentence with the marker of the passage that supports it (the model's own dropped)."""
        written = support.MARKER.findall(sentence)
        plain = support.strip_markers(sentence).rstrip()
        if len(plain.strip()) < MIN_SENTENCE or plain.rstrip().endswith(":"):
            return plain
        found = self.index.best(plain)
        self.check.markers_dropped += sum(1 for n in written if not found.supported
                                          or int(n) != self.numbers[found.passage])
        if not found.supported:
            self.check.uncited_sentences += 1
            return plain
        number = self.numbers[found.passage]
        if number not in self.check.cited:
            self.check.cited.append(number)
        punct = _TRAILING_PUNCT.search(plain)
        body = plain[:punct.start()] if punct else plain
        return f"{body} [{number}]" + (punct.group(1) if punct else "")

    def cite_all(self, text: str) -> str:
        out, rest = [], text
        while (match := _END.search(rest)) is not None:
            out.append(self.cite(rest[:match.start()]) + match.group(0))
            rest = rest[match.end():]
        if rest.strip():
            out.append(self.cite(rest))
        return "".join(out).rstrip()

    # -- the quote and the number check --------------------------------------------------------
    def quote(self, answer: str) -> str:
        """The source sentence that best matches the question and the answer, quoted and cited."""
        analyzer = shared_analyzer()
        units = [(p, unit) for p, text in enumerate(self.texts) for unit in sentence_units(text)
                 if len(unit) >= 12]
        if not units:
            return ""
        asked, said, *found = [{m for m in terms if m not in STOP_FORMS} for terms in analyzer.morphemes_many(
            [self.question, support.strip_markers(answer), *(u for _, u in units)])]
        if not asked:
            return ""
        best, best_score, best_terms = None, 0.0, set()
        for (p, unit), terms in zip(units, found, strict=True):
            question_share = len(asked & terms) / len(asked)
            if question_share < QUOTE_QUESTION_SHARE or not terms:
                continue
            answer_share = len(said & terms) / len(said) if said else 0.0
            density = len(terms & (asked | said)) / len(terms)  # a table header holds many other words
            score = question_share + answer_share + density - 0.001 * p  # ties: the earlier passage
            if score > best_score:
                best, best_score, best_terms = (p, unit), score, terms
        if best is None or (said and len(best_terms - said) <= QUOTE_NEW_TERMS):
            return ""  # nothing to quote, or the answer already says it in the source's words
        p, unit = best
        text = unit if len(unit) <= QUOTE_MAX else unit[:QUOTE_MAX].rstrip() + "…"
        self.check.quote = {"index": self.numbers[p], "text": text}
        if self.numbers[p] not in self.check.cited:
            self.check.cited.append(self.numbers[p])
        return f"근거: “{text}” [{self.numbers[p]}]"

    def invented(self, answer: str) -> list[str]:
        return support.invented(answer, [*self.texts, self.question])

    def ending(self, answer: str) -> str:
        """What follows the answer: the quote, and the note on numbers to check."""
        self.check.invented_numbers = self.invented(answer)
        declined = "찾을 수 없" in answer  # the model found no answer: no quote to back one
        parts = [part for part in (None if declined else self.quote(answer),) if part]
        if self.check.invented_numbers:
            parts.append(NUMBERS_NOTE.format(numbers=", ".join(self.check.invented_numbers)))
        return ("\n\n" + "\n\n".join(parts)) if parts else ""

    def finish(self, answer: str) -> str:
        """A whole answer as shown: cited sentences, then the quote and any note."""
        cited = self.cite_all(answer.strip())
        return cited + self.ending(cited)


class SentenceStream:
    """Streamed answer text out sentence by sentence, each cited as it completes."""

    def __init__(self, grounding: Grounding):
        self.grounding = grounding
        self.pending = ""
        self.shown = ""

    def feed(self, piece: str) -> str:
        self.pending += piece
        out = []
        while (match := _END.search(self.pending)) is not None:
            sentence = self.pending[:match.start()]
            out.append(self.grounding.cite(sentence) + match.group(0))
            self.pending = self.pending[match.end():]
        text = "".join(out)
        self.shown += text
        return text

    def finish(self) -> str:
        tail = self.grounding.cite(self.pending) if self.pending.strip() else ""
        self.pending = ""
        self.shown = (self.shown + tail).rstrip()
        ending = self.grounding.ending(self.shown)
        return tail + ending
