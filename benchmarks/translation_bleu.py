"""Translation quality of the `translate` service: BLEU and chrF (sacrebleu), Korean → English.

The parallel set is assembled offline from the seed documents' own bilingual terms, written
"한국어 용어(English Term)" in the guideline (e.g. 기밀정보(Classified), 파운데이션 모델(Foundation
Model)). Runs the real service pipeline (gateway, guard, embedded model by default).

    .venv/bin/python benchmarks/translation_bleu.py [--model NAME] [--limit 40]
Writes benchmarks/results/translation_bleu.json. Needs `pip install sacrebleu`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from pathlib import Path
from types import SimpleNamespace

import sacrebleu

from hanchang.assist.services.base import ServiceContext
from hanchang.assist.services.translate import TRANSLATE
from hanchang.config import LimitsConfig, load_settings
from hanchang.core.grades import Grade
from hanchang.core.principal import Principal, Role
from hanchang.gateway.limits import InProcessLimiter
from hanchang.gateway.registry import ModelRegistry
from hanchang.gateway.router import Gateway

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT.parent / "shared" / "seeds"
PAIR = re.compile(r"([가-힣][가-힣 ·]{1,20}?)\s?\(([A-Z][A-Za-z\-]+(?: [A-Za-z\-]+){0,4})\)")


def parallel_set(limit: int) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for path in sorted(SEEDS.glob("*.txt")):
        for korean, english in PAIR.findall(path.read_text(encoding="utf-8")):
            korean = korean.strip()
            # Abbreviations such as (AX) or (NLB) are not translations of the Korean term.
            if len(korean) >= 2 and korean not in seen and any(c.islower() for c in english):
                seen[korean] = english
    return sorted(seen.items())[:limit]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model name (default: the configured default)")
    parser.add_argument("--limit", type=int, default=40)
    args = parser.parse_args()
    settings = load_settings()
    gateway = Gateway(ModelRegistry(settings.model_specs(), settings.default_model), InProcessLimiter(),
                      LimitsConfig(), None)
    state = SimpleNamespace(gateway=gateway, settings=settings)
    principal = Principal(0, "benchmark", 0, "BENCH", Role.USER)
    context = ServiceContext(state, principal, Grade.OPEN, args.model)
    pairs = parallel_set(args.limit)
    hypotheses, started = [], time.perf_counter()
    for korean, _ in pairs:
        result = await TRANSLATE.run(context, {"text": korean, "source": "ko", "target": "en"})
        hypotheses.append(result.text.strip().splitlines()[0] if result.text.strip() else "")
    elapsed = time.perf_counter() - started
    references = [english for _, english in pairs]
    bleu = sacrebleu.corpus_bleu(hypotheses, [references])
    chrf = sacrebleu.corpus_chrf(hypotheses, [references])
    for (korean, english), hypothesis in list(zip(pairs, hypotheses, strict=True))[:10]:
        print(f"{korean} → {hypothesis!r} (reference {english!r})")
    print(f"\n{len(pairs)} terms, model {context.model or gateway.registry.default_model}: "
          f"BLEU {bleu.score:.1f}, chrF {chrf.score:.1f}, {elapsed / max(1, len(pairs)):.2f} s per term")
    out = ROOT / "benchmarks" / "results" / "translation_bleu.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"pairs": len(pairs), "bleu": round(bleu.score, 2), "chrf": round(chrf.score, 2),
                               "seconds_per_item": round(elapsed / max(1, len(pairs)), 2),
                               "items": [{"ko": k, "reference": e, "hypothesis": h}
                                         for (k, e), h in zip(pairs, hypotheses, strict=True)]},
                              indent=2, ensure_ascii=False))
    print(f"written {out}")
    await gateway.aclose()


if __name__ == "__main__":
    asyncio.run(main())
