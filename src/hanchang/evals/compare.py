"""Two runs lined up item by item: what flipped, per-criterion deltas, and whether it is chance.

Neither Inspect nor OpenAI's Evals API compares runs; a promotion gate needs to. Items are
paired by their id in the set. For pass/fail, McNemar's exact test on the discordant pairs (the
items one run passed and the other failed); for scores, the mean paired difference with a
paired bootstrap 95 % interval (seeded: the same two runs always give the same interval).
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

from sqlalchemy.orm import Session

from hanchang.core.errors import InvalidInput
from hanchang.evals.results import output_items, output_sample
from hanchang.store.tables import EvalRun

BOOTSTRAP_ROUNDS = 2000
SEED = 20261205


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact p-value of McNemar's test: b and c are the two kinds of discordant pairs."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def bootstrap_interval(deltas: list[float], rounds: int = BOOTSTRAP_ROUNDS, seed: int = SEED) -> tuple[float, float]:
    """95 % interval of the mean paired difference, by resampling the pairs."""
    if not deltas:
        return (0.0, 0.0)
    rng = random.Random(seed)
    n = len(deltas)
    means = sorted(sum(deltas[rng.randrange(n)] for _ in range(n)) / n for _ in range(rounds))
    return (means[int(0.025 * rounds)], means[min(rounds - 1, int(0.975 * rounds))])


def _by_item(session: Session, run: EvalRun) -> dict[str, dict[str, Any]]:
    found = {}
    for row in output_items(session, run):
        found[row.item_id] = {"status": row.status, "results": {r["name"]: r for r in json.loads(row.results)},
                              "answer": (output_sample(session, run, row).get("output_text") or "")[:300]}
    return found


def compare(session: Session, base: EvalRun, other: EvalRun) -> dict[str, Any]:
    if base.id == other.id:
        raise InvalidInput("서로 다른 두 실행을 비교하세요.", "compare two different runs")
    a, b = _by_item(session, base), _by_item(session, other)
    shared = [item for item in a if item in b]
    if not shared:
        raise InvalidInput("두 실행에 같은 항목이 없습니다(같은 평가 세트의 실행을 비교하세요).",
                           "the runs share no items: compare runs over the same set")
    names = list(dict.fromkeys(n for item in shared for n in (*a[item]["results"], *b[item]["results"])))
    criteria, flipped = [], []
    for name in names:
        wins = losses = both = neither = 0
        deltas = []
        for item in shared:
            ra, rb = a[item]["results"].get(name), b[item]["results"].get(name)
            if not ra or not rb:
                continue
            if ra["passed"] is not None and rb["passed"] is not None:
                if ra["passed"] and rb["passed"]:
                    both += 1
                elif not ra["passed"] and not rb["passed"]:
                    neither += 1
                elif rb["passed"]:
                    wins += 1
                    flipped.append({"item": item, "criterion": name, "to": "pass",
                                    "before": a[item]["answer"], "after": b[item]["answer"]})
                else:
                    losses += 1
                    flipped.append({"item": item, "criterion": name, "to": "fail",
                                    "before": a[item]["answer"], "after": b[item]["answer"]})
            if ra["score"] is not None and rb["score"] is not None:
                deltas.append(rb["score"] - ra["score"])
        paired = wins + losses + both + neither
        if not paired and not deltas:
            continue
        low, high = bootstrap_interval(deltas)
        criteria.append({
            "criterion": name, "pairs": paired,
            "pass_rate": {"base": round((both + losses) / paired, 4) if paired else None,
                          "other": round((both + wins) / paired, 4) if paired else None},
            "flipped_to_pass": wins, "flipped_to_fail": losses,
            "mcnemar_p": round(mcnemar_exact(wins, losses), 4),
            "score_delta": {"mean": round(sum(deltas) / len(deltas), 4) if deltas else None,
                            "ci95": [round(low, 4), round(high, 4)] if deltas else None, "pairs": len(deltas)},
        })
    return {"object": "eval.run.comparison", "base": base.id, "other": other.id, "items": len(shared),
            "only_in_base": len(a) - len(shared), "only_in_other": len(b) - len(shared),
            "same_dataset": base.dataset_sha256 == other.dataset_sha256,
            "criteria": criteria, "flipped": flipped}


def gate(comparison: dict[str, Any], criterion: str, *, margin: float = 0.0, alpha: float = 0.05,
         guarded: list[str] | None = None) -> dict[str, Any]:
    """Promote `other` over `base`? Only when on `criterion` it passes at least as often as the base
    (and, if it passes more, not by chance: McNemar p ≤ alpha or no item flipped to fail), and on
    every `guarded` criterion it does not fall by more than `margin` — the rule a model promotion
    (issue 26's eval gate) applies."""
    rows = {row["criterion"]: row for row in comparison["criteria"]}
    reasons = []
    if criterion not in rows:
        return {"promote": False, "reasons": [f"no results for '{criterion}'"]}
    main = rows[criterion]
    base, other = main["pass_rate"]["base"], main["pass_rate"]["other"]
    if base is None or other is None or other < base:
        reasons.append(f"{criterion}: {other} < {base}")
    elif other > base and main["flipped_to_fail"] and main["mcnemar_p"] > alpha:
        reasons.append(f"{criterion}: the gain may be chance (McNemar p {main['mcnemar_p']})")
    for name in guarded or ():
        row = rows.get(name)
        if row and row["pass_rate"]["base"] is not None and row["pass_rate"]["other"] is not None \
                and row["pass_rate"]["other"] < row["pass_rate"]["base"] - margin:
            reasons.append(f"{name}: {row['pass_rate']['other']} < {row['pass_rate']['base']} - {margin}")
    return {"promote": not reasons, "criterion": criterion, "margin": margin, "reasons": reasons}
