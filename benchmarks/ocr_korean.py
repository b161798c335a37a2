"""OCR of scanned Korean pages: character accuracy and pages per second.

Pages are rendered from the seed documents' own text (../shared/seeds, a Korean font at 300 dpi
with scanner-like rotation, blur and specks: hanchang_devtools.scans), saved as one image-only
PDF per document, and read back through Hanchang's own PDF parser (PDFium renders, Tesseract
reads). Character accuracy = 1 − CER, CER = edit distance / reference length, over the text
with white space removed (a line break is not an error). Writes benchmarks/results/ocr_korean.json.

    .venv/bin/python benchmarks/ocr_korean.py [--pages-per-document 2] [--documents 5]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from hanchang_devtools.scans import page_texts, scanned_pdf

from hanchang.knowledge.parsers import parse
from hanchang.knowledge.parsers.ocr import engine_problem

ROOT = Path(__file__).resolve().parent.parent
SEEDS = Path(os.environ.get("HANCHANG_SHARED", ROOT.parent / "shared")) / "seeds"
RESULTS = ROOT / "benchmarks" / "results"


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance, one DP row at a time (numpy over the row)."""
    if not a:
        return len(b)
    previous = np.arange(len(b) + 1)
    codes = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    for i, char in enumerate(a, 1):
        substitute = previous[:-1] + (codes != ord(char))
        current = np.empty_like(previous)
        current[0] = i
        current[1:] = np.minimum(previous[1:] + 1, substitute)
        # insertions run left to right: a cumulative minimum of (cost - position) does it at once
        current = np.minimum.accumulate(current - np.arange(len(b) + 1)) + np.arange(len(b) + 1)
        previous = current
    return int(previous[-1])


def squeeze(text: str) -> str:
    return "".join(text.split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=5)
    parser.add_argument("--pages-per-document", type=int, default=2)
    args = parser.parse_args()
    if problem := engine_problem():
        raise SystemExit(f"OCR engine: {problem}. apt-get install tesseract-ocr tesseract-ocr-kor")
    seeds = sorted(SEEDS.glob("*.txt"))[: args.documents]
    rows, reference_chars, errors, pages, seconds = [], 0, 0, 0, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            text = seed.read_text(encoding="utf-8")
            wanted = page_texts(text[len(text) // 3:])[: args.pages_per_document]  # body text, past the cover
            pdf = scanned_pdf(wanted, Path(tmp) / f"{seed.stem}.pdf")
            started = time.perf_counter()
            parsed = parse(pdf)
            elapsed = time.perf_counter() - started
            for number, expected in enumerate(wanted, 1):
                read = squeeze(" ".join(b.text for b in parsed.blocks if b.page == number))
                reference = squeeze(expected)
                distance = edit_distance(reference, read)
                rows.append({"document": seed.name, "page": number, "reference_chars": len(reference),
                             "read_chars": len(read), "edit_distance": distance,
                             "character_accuracy": round(1 - distance / len(reference), 4)})
                reference_chars += len(reference)
                errors += distance
            pages += len(wanted)
            seconds += elapsed
            print(f"{seed.name}: {len(wanted)} pages in {elapsed:.1f} s, "
                  f"accuracy {[r['character_accuracy'] for r in rows[-len(wanted):]]}")
    report = {"pages": pages, "reference_chars": reference_chars,
              "character_accuracy": round(1 - errors / reference_chars, 4),
              "cer": round(errors / reference_chars, 4), "pages_per_second": round(pages / seconds, 3),
              "seconds_per_page": round(seconds / pages, 2), "cpus": os.cpu_count(), "dpi": 300,
              "engine": "tesseract kor+eng, --psm 4", "rows": rows}
    print(f"\n{pages} pages, {reference_chars} characters: accuracy {report['character_accuracy']:.1%} "
          f"(CER {report['cer']:.1%}), {report['pages_per_second']} pages/s ({report['seconds_per_page']} s a page)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ocr_korean.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print(f"written {RESULTS / 'ocr_korean.json'}")


if __name__ == "__main__":
    main()
