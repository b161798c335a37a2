"""Fine-tuning the embedded model on the sample corpus, as an agency admin would, and what it buys.

A fresh HANCHANG_HOME set up as a user would (`hanchang setup`: the sample corpus in collection
`sample`), `hanchang serve`, then through the API only:
1. a grounded question/answer dataset generated from the collection's passages by the embedded
   model as teacher (`POST /api/training/datasets`, source collection), a quarter held out;
2. a LoRA fine-tuning job on the embedded model (`POST /v1/fine_tuning/jobs`), run by the
   server's training worker in its own process;
3. the eval gate (`POST /api/training/models/{id}/gate`): base and adapter on the held-out
   questions (character F1 ≥ 0.5 against the teacher's answer) and on the regression sets
   (refusals, the sample-holdout key facts), compared pairwise.
Prints and writes benchmarks/results/finetune.json: seconds per step, peak memory of the job
process, device, and base vs adapter on each set.

    .venv/bin/python benchmarks/finetune.py [--passages 30] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform as host
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
HANCHANG = str(Path(sys.executable).with_name("hanchang"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--passages", type=int, default=30)
    parser.add_argument("--per-passage", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--port", type=int, default=8793)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="hanchang-finetune-"))
    env = {**os.environ, "HANCHANG_HOME": str(home)}
    env.pop("HANCHANG_CONFIG", None)
    subprocess.run([HANCHANG, "setup"], env=env, check=True, capture_output=True)
    credentials = (home / "initial-credentials.txt").read_text().splitlines()
    key = dict(line.split("=", 1) for line in credentials if "=" in line)["api_key"]
    url = f"http://127.0.0.1:{args.port}"
    server = subprocess.Popen([HANCHANG, "serve", "--port", str(args.port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=3600)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if client.get("/readyz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(1)
        started = time.perf_counter()
        built = client.post("/api/training/datasets", json={
            "name": "sample-qa", "source": "collection", "collection": "sample", "teacher": "local",
            "passages": args.passages, "per_passage": args.per_passage, "holdout": 0.25, "seed": 1})
        built.raise_for_status()
        dataset = built.json()
        generated_s = time.perf_counter() - started
        print(f"dataset {dataset['id']}: {dataset['hanchang']['train']} train / {dataset['hanchang']['holdout']} "
              f"held out ({dataset['skipped']} unsupported pairs dropped) in {generated_s:.0f} s", flush=True)
        job = client.post("/v1/fine_tuning/jobs", json={
            "model": "local", "training_file": dataset["id"], "seed": 1,
            "hyperparameters": {"n_epochs": args.epochs, "batch_size": 4}}).json()
        while job["status"] not in ("succeeded", "failed", "cancelled"):
            time.sleep(10)
            job = client.get(f"/v1/fine_tuning/jobs/{job['id']}").json()
            print(f"  {job['status']} {job['hanchang']['progress'] * 100:.0f} %", flush=True)
        if job["status"] != "succeeded":
            raise SystemExit(f"the job {job['status']}: {job['error']}")
        manifest = job["hanchang"]["manifest"]
        model = job["fine_tuned_model"]
        started = time.perf_counter()
        gate = client.post(f"/api/training/models/{model}/gate")
        gate.raise_for_status()
        verdict = gate.json()
        gate_s = time.perf_counter() - started
        sets = {}
        for row in verdict["sets"]:
            comparison = client.get(f"/v1/evals/runs/{row['base_run']}/compare/{row['model_run']}").json()
            scores = next((c for c in comparison["criteria"] if c["criterion"] == row["criterion"]),
                          {"pass_rate": {"base": None, "other": None}})
            sets[row["set"]] = {"criterion": row["criterion"], "base": scores["pass_rate"]["base"],
                                "adapter": scores["pass_rate"]["other"], "items": comparison.get("items"),
                                "mcnemar_p": scores.get("mcnemar_p"), "passes_gate": row["promote"],
                                "reasons": row["reasons"]}
        steps = manifest["steps"]
        report = {
            "date": time.strftime("%Y-%m-%d"), "machine": f"{host.machine()} {os.cpu_count()} cores",
            "device": manifest["device"], "base_model": manifest["base_model"],
            "dataset": {"train": dataset["hanchang"]["train"], "holdout": dataset["hanchang"]["holdout"],
                        "generated_s": round(generated_s), "teacher": "local"},
            "hyperparameters": manifest["hyperparameters"], "steps": steps,
            "seconds_per_step": round(manifest["train_seconds"] / max(steps, 1), 2),
            "job_seconds": manifest["seconds"], "peak_rss_mb": manifest["peak_rss_mb"],
            "loss_first_last": [manifest["curve"][0].get("train_loss"),
                                next(p["train_loss"] for p in reversed(manifest["curve"]) if "train_loss" in p)],
            "gate_seconds": round(gate_s), "promoted": verdict["promote"], "sets": sets,
            "libraries": manifest["libraries"]}
        print(json.dumps(report, ensure_ascii=False, indent=2))
        out = ROOT / "benchmarks" / "results" / "finetune.json"
        out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    finally:
        server.terminate()
        server.wait(60)


if __name__ == "__main__":
    main()
