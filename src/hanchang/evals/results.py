"""What runs found, in OpenAI's shapes: output items, a run's counts per criterion, usage and latency."""

from __future__ import annotations

import json
import statistics
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from hanchang.store.keyring import open_json
from hanchang.store.tables import EvalOutputItem, EvalRun


def timestamp(moment) -> int | None:
    return int(moment.timestamp()) if moment else None


def output_items(session: Session, run: EvalRun, status: str | None = None,
                 limit: int | None = None, after: str | None = None) -> list[EvalOutputItem]:
    query = select(EvalOutputItem).where(EvalOutputItem.run_id == run.id)
    if status:
        query = query.where(EvalOutputItem.status == status)
    rows = list(session.scalars(query.order_by(EvalOutputItem.position)))
    if after:
        ids = [r.id for r in rows]
        rows = rows[ids.index(after) + 1:] if after in ids else []
    return rows[:limit] if limit else rows


def run_items_where(run: EvalRun) -> str:
    return f"eval_runs.items:{run.id}"


def run_items(session: Session, run: EvalRun) -> list[dict[str, Any]]:
    """The run's snapshot of its items (sealed at rest when the run is S or C)."""
    return open_json(session, run.agency_id, run_items_where(run), run.items)


def output_sample_where(run_id: str, position: int) -> str:
    return f"eval_output_items.sample:{run_id}:{position}"


def output_sample(session: Session, run: EvalRun, row) -> dict[str, Any]:
    return open_json(session, run.agency_id, output_sample_where(run.id, row.position), row.sample)


def describe_item(run: EvalRun, row: EvalOutputItem) -> dict[str, Any]:
    session = object_session(run)
    sample = output_sample(session, run, row)
    item = run_items(session, run)[row.position]["item"]
    usage = sample.get("usage") or {}
    return {"object": "eval.run.output_item", "id": row.id, "run_id": run.id, "eval_id": run.eval_id,
            "created_at": timestamp(row.created_at), "status": row.status, "datasource_item_id": row.position,
            "datasource_item": item, "results": [{**r, "sample": None} for r in json.loads(row.results)],
            "sample": {"input": sample.get("input") or [],
                       "output": [{"role": "assistant", "content": sample.get("output_text") or ""}],
                       "finish_reason": sample.get("finish_reason") or "", "model": sample.get("model") or "",
                       "usage": {"prompt_tokens": usage.get("prompt_tokens", 0),
                                 "completion_tokens": usage.get("completion_tokens", 0),
                                 "total_tokens": usage.get("total_tokens", 0), "cached_tokens": 0},
                       "error": sample.get("error") or {"code": "", "message": ""},
                       "temperature": (sample.get("sampling") or {}).get("temperature", 0),
                       "max_completion_tokens": 0, "top_p": 1, "seed": 0,
                       "citations": sample.get("citations") or [], "answer_check": sample.get("answer_check"),
                       "latency_s": sample.get("latency_s")}}


def summarise(session: Session, run: EvalRun) -> dict[str, Any]:
    rows = output_items(session, run)
    counts = {"total": len(rows), "passed": 0, "failed": 0, "errored": 0}
    per: dict[str, dict[str, Any]] = {}
    usage: dict[str, dict[str, int]] = {}
    latency = []
    for row in rows:
        counts[{"pass": "passed", "fail": "failed"}.get(row.status, "errored")] += 1
        sample = output_sample(session, run, row)
        if sample.get("latency_s") is not None and not sample.get("error"):
            latency.append(float(sample["latency_s"]))
        model = sample.get("model") or ""
        used = usage.setdefault(model, {"invocation_count": 0, "prompt_tokens": 0, "completion_tokens": 0,
                                        "total_tokens": 0, "cached_tokens": 0})
        used["invocation_count"] += 1
        for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
            used[key] += int((sample.get("usage") or {}).get(key) or 0)
        for result in json.loads(row.results):
            entry = per.setdefault(result["name"], {"testing_criteria": result["name"], "passed": 0, "failed": 0,
                                                    "scores": []})
            if result["passed"] is True:
                entry["passed"] += 1
            elif result["passed"] is False:
                entry["failed"] += 1
            if result["score"] is not None:
                entry["scores"].append(result["score"])
    criteria = []
    for entry in per.values():
        scores = entry.pop("scores")
        judged = entry["passed"] + entry["failed"]
        criteria.append({**entry, "pass_rate": round(entry["passed"] / judged, 4) if judged else None,
                         "mean_score": round(statistics.fmean(scores), 4) if scores else None})
    ordered = sorted(latency)

    def pct(share: float) -> float | None:
        return round(ordered[min(len(ordered) - 1, max(0, int(share * len(ordered) + 0.999) - 1))], 2) \
            if ordered else None
    return {"result_counts": counts, "per_testing_criteria_results": criteria,
            "per_model_usage": [{"model_name": m, **u} for m, u in usage.items()],
            "latency_s": {"p50": pct(0.5), "p90": pct(0.9), "mean": round(statistics.fmean(latency), 2)
                          if latency else None}}


def describe_run(session: Session, run: EvalRun) -> dict[str, Any]:
    summary = json.loads(run.summary) if run.summary else summarise(session, run)
    config = json.loads(run.config)
    target = config.get("target") or {}
    return {"object": "eval.run", "id": run.id, "eval_id": run.eval_id, "name": run.name, "status": run.status,
            "model": target.get("model") or "", "created_at": timestamp(run.created_at),
            "data_source": json.loads(run.data_source), "metadata": json.loads(run.meta or "{}"),
            "error": {"code": "run_failed", "message": run.error} if run.error else None,
            "report_url": f"/evals#{run.id}",
            "result_counts": summary["result_counts"],
            "per_model_usage": summary["per_model_usage"],
            "per_testing_criteria_results": [{"testing_criteria": c["testing_criteria"], "passed": c["passed"],
                                              "failed": c["failed"]} for c in summary["per_testing_criteria_results"]],
            "hanchang": {"progress": {"done": run.items_done, "total": run.items_total},
                         "grade": run.grade, "dataset": {"name": run.dataset_name, "version": run.dataset_version,
                                                         "sha256": run.dataset_sha256},
                         "scores": summary["per_testing_criteria_results"], "latency_s": summary["latency_s"],
                         "config": config, "started_at": timestamp(run.started_at),
                         "finished_at": timestamp(run.finished_at)}}


