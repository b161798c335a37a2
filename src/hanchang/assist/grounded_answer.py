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

import math
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
CONTEXT_WEIGHT = 0.5  # the question's words in the line before a sentence count half
DENSITY_WEIGHT = 0.3  # how much of a sentence is about the question (a table header is not)
ANSWER_WEIGHT = 0.25  # the answer's words in a sentence: a tie-breaker, never the reason to quote
NUMBER_WEIGHT = 3.0  # a number in the question names the item asked about (원칙 4, 2027년)
RELEVANT_SHARE = 0.2  # below this share of the question's terms in every passage: nothing relevant
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
        self._said: set[str] = set()

    def relevant(self) -> bool:
        """Some passage holds at least `RELEVANT_SHARE` of the question's content morphemes, and
        every number the question names (a year, an article) is in some passage: asked about 2030,
        sources that never say 2030 cannot answer."""
        if not self.texts:
            return True
        asked = {n.digits for n in support.numbers(self.question)}
        held = {n.digits for text in self.texts for n in support.numbers(text)}
        if asked - held:
            return False
        return any(self.index.of(self.question, p) >= RELEVANT_SHARE for p in range(len(self.texts)))

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
    def _ranked(self, answer: str = "") -> list[tuple[float, int, str, set[str]]]:
        """Passage sentences that speak to the question, best first: the question's terms they
        hold, rarer ones (a number, a name) weighing more; then how much of the sentence is about
        the question (a table header holds many other words); then, a little, the answer's terms."""
        analyzer = shared_analyzer()
        units = [(p, unit) for p, text in enumerate(self.texts) for unit in sentence_units(text)
                 if len(unit) >= 12]
        if not units:
            return []
        asked, said, *found = [{m for m in terms if m not in STOP_FORMS} for terms in analyzer.morphemes_many(
            [self.question, support.strip_markers(answer), *(u for _, u in units)])]
        asked &= set().union(*found)  # words no passage has cannot tell sentences apart
        if not asked:
            return []
        weight = {t: math.log(1 + len(units) / max(1, sum(t in terms for terms in found)))
                  * (NUMBER_WEIGHT if t[:1].isdigit() else 1.0) for t in asked}  # "원칙 4": the 4 decides
        total = sum(weight.values())
        ranked = []
        previous: tuple[int, set[str]] = (-1, set())
        for (p, unit), terms in zip(units, found, strict=True):
            # The line before (a bullet's heading, "● … 응답 속도에 대한 목표") lends its words at half weight.
            context = (previous[1] - terms) if previous[0] == p else set()
            previous = (p, terms)
            if not terms or len(asked & (terms | context)) / len(asked) < QUOTE_QUESTION_SHARE:
                continue
            question_share = (sum(weight[t] for t in asked & terms)
                              + CONTEXT_WEIGHT * sum(weight[t] for t in asked & context)) / total
            density = len(terms & asked) / len(terms)
            answer_share = len(said & terms) / len(said) if said else 0.0
            score = question_share + DENSITY_WEIGHT * density + ANSWER_WEIGHT * answer_share - 0.001 * p
            ranked.append((score, p, unit, terms))
        ranked.sort(key=lambda r: -r[0])
        self._said = said
        return ranked

    def key_sentence(self) -> tuple[int, str] | None:
        """The passage sentence that best answers the question (number, text), for the prompt."""
        ranked = self._ranked()
        return (self.numbers[ranked[0][1]], ranked[0][2]) if ranked else None

    def quote(self, answer: str) -> str:
        """The source sentence that best answers the question, quoted and cited — unless the answer
        already says it in the source's words."""
        ranked = self._ranked(answer)
        if not ranked:
            return ""
        _, p, unit, terms = ranked[0]
        numbers_left_out = {n.digits for n in support.numbers(unit)} - {n.digits for n in support.numbers(answer)}
        if self._said and len(terms - self._said) <= QUOTE_NEW_TERMS and not numbers_left_out:
            return ""
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
