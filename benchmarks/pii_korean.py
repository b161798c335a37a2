"""Korean personal-data detection: precision/recall per type and throughput, ours beside
Presidio's default recognizers, on ../shared/bench/pii_dev.jsonl.

    .venv/bin/python benchmarks/pii_korean.py [--data PATH] [--repeat 200]

Values are compared with separators removed (the set's README). Presidio needs
`pip install presidio-analyzer`; its default NER model (en_core_web_lg) cannot be downloaded
here, so it runs its default recognizer registry over a blank spaCy tokenizer: every
recognizer that matters for these types is a pattern recognizer, so that is its default
behaviour for them. Writes benchmarks/results/pii_korean.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections import Counter
from pathlib import Path

from hanchang.guard.pii import scan

# Presidio validates e-mail domains with tldextract, which tries to download the public suffix
# list (no network here) and then falls back to its bundled copy: keep that noise quiet.
logging.getLogger("tldextract").setLevel(logging.CRITICAL)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "bench" / "pii_dev.jsonl"
TYPES = ["RRN", "FRN", "PHONE", "EMAIL", "PASSPORT", "DRIVER_LICENSE", "BRN", "CARD", "ACCOUNT"]
PRESIDIO_TYPES = {
    "KR_RRN": "RRN", "KR_FRN": "FRN", "PHONE_NUMBER": "PHONE", "EMAIL_ADDRESS": "EMAIL",
    "KR_PASSPORT": "PASSPORT", "KR_DRIVER_LICENSE": "DRIVER_LICENSE", "KR_BRN": "BRN",
    "CREDIT_CARD": "CARD", "US_BANK_NUMBER": "ACCOUNT", "IBAN_CODE": "ACCOUNT",
}


def normal(value: str) -> str:
    return "".join(ch for ch in value if ch.isalnum()).upper()


def evaluate(lines: list[dict], detect) -> dict:
    tp, fp, fn = Counter(), Counter(), Counter()
    other = Counter()
    for line in lines:
        gold = Counter((s["type"], normal(s["value"])) for s in line["spans"])
        found = Counter()
        for kind, value in detect(line["text"]):
            if kind in TYPES:
                found[(kind, normal(value))] += 1
            else:
                other[kind] += 1
        for key in found.keys() | gold.keys():
            hit = min(found[key], gold[key])
            tp[key[0]] += hit
            fp[key[0]] += found[key] - hit
            fn[key[0]] += gold[key] - hit
    def ratio(a, b):
        return round(a / b, 4) if b else None
    per_type = {t: {"precision": ratio(tp[t], tp[t] + fp[t]), "recall": ratio(tp[t], tp[t] + fn[t]),
                    "tp": tp[t], "fp": fp[t], "fn": fn[t]} for t in TYPES}
    total_tp, total_fp, total_fn = sum(tp.values()), sum(fp.values()), sum(fn.values())
    return {"per_type": per_type,
            "overall": {"precision": ratio(total_tp, total_tp + total_fp),
                        "recall": ratio(total_tp, total_tp + total_fn),
                        "tp": total_tp, "fp": total_fp, "fn": total_fn},
            "other_types_reported": dict(other)}


def throughput(lines: list[dict], detect, repeat: int) -> float:
    texts = [line["text"] for line in lines] * repeat
    started = time.perf_counter()
    for text in texts:
        detect(text)
    return round(len(texts) / (time.perf_counter() - started), 1)


def ours(text: str):
    return [(f.type, f.value) for f in scan(text)]


def presidio_detector():
    try:
        import spacy
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import SpacyNlpEngine
    except ImportError:
        return None, "presidio-analyzer is not installed (pip install presidio-analyzer)"

    class BlankSpacyEngine(SpacyNlpEngine):
        def load(self) -> None:
            self.nlp = {"en": spacy.blank("en")}

    engine = BlankSpacyEngine(models=[{"lang_code": "en", "model_name": "blank"}])
    engine.load()
    analyzer = AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])
    names = sorted({r.name for r in analyzer.registry.recognizers})

    def detect(text: str):
        return [(PRESIDIO_TYPES.get(r.entity_type, r.entity_type), text[r.start:r.end])
                for r in analyzer.analyze(text=text, language="en")]

    return detect, f"Presidio default registry ({len(names)} recognizers)"


def print_table(name: str, result: dict, lines_per_s: float) -> None:
    print(f"\n{name}  —  {lines_per_s:,.0f} lines/s")
    print(f"{'type':16}{'precision':>10}{'recall':>9}{'tp':>5}{'fp':>5}{'fn':>5}")
    for kind, row in [*result["per_type"].items(), ("OVERALL", result["overall"])]:
        p = "-" if row["precision"] is None else f"{row['precision']:.3f}"
        r = "-" if row["recall"] is None else f"{row['recall']:.3f}"
        print(f"{kind:16}{p:>10}{r:>9}{row['tp']:>5}{row['fp']:>5}{row['fn']:>5}")
    if result["other_types_reported"]:
        print(f"  other types reported: {result['other_types_reported']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeat", type=int, default=200, help="passes over the set for throughput")
    args = parser.parse_args()
    lines = [json.loads(x) for x in args.data.read_text(encoding="utf-8").splitlines() if x.strip()]
    report = {"data": str(args.data), "lines": len(lines)}
    report["hanchang"] = evaluate(lines, ours)
    report["hanchang"]["lines_per_s"] = throughput(lines, ours, args.repeat)
    print_table("Hanchang guard", report["hanchang"], report["hanchang"]["lines_per_s"])
    detect, label = presidio_detector()
    if detect is None:
        print(f"\nPresidio: skipped — {label}")
        report["presidio"] = {"skipped": label}
    else:
        report["presidio"] = evaluate(lines, detect)
        report["presidio"]["lines_per_s"] = throughput(lines, detect, max(1, args.repeat // 20))
        report["presidio"]["configuration"] = label
        print_table(label, report["presidio"], report["presidio"]["lines_per_s"])
    out = ROOT / "benchmarks" / "results" / "pii_korean.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
