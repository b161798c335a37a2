"""One LoRA fine-tuning run on PyTorch, transformers, PEFT and TRL (`SFTTrainer`).

Imported only by the training job process (`training.job_process`): PyTorch and friends are the
optional extra `hanchang[train]`, and the API process never loads them. The base is the GGUF the
platform serves: transformers loads it by dequantising. LoRA goes on the attention and MLP
projections; the loss is on the assistant's answer only (prompt-completion examples). The
callbacks report every logged step (OpenAI's metric names), save checkpoints, and stop at a
cancellation between steps.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
BASE_LEARNING_RATE = 2e-4
MAX_LENGTH = 1024
LIBRARIES = ("torch", "transformers", "peft", "trl", "datasets", "accelerate", "gguf")


class TrainingUnavailable(RuntimeError):
    """PyTorch and friends are not installed here."""


@dataclass
class Hyperparameters:
    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float
    lora_rank: int
    lora_alpha: float

    @property
    def learning_rate(self) -> float:
        return BASE_LEARNING_RATE * self.learning_rate_multiplier


def resolve(asked: dict[str, Any], examples: int) -> Hyperparameters:
    """OpenAI's hyperparameters, each a number or `auto`, resolved for a set of `examples`."""
    def pick(name: str, auto: float) -> float:
        value = asked.get(name, "auto")
        return auto if value in (None, "auto") else value
    epochs = int(pick("n_epochs", min(10, max(3, math.ceil(100 / max(examples, 1))))))
    batch = int(pick("batch_size", 1 if examples < 50 else 4 if examples < 500 else 8))
    multiplier = float(pick("learning_rate_multiplier", 1.0))
    rank = int(pick("lora_rank", 8))
    return Hyperparameters(epochs, batch, multiplier, rank, float(pick("lora_alpha", 2 * rank)))


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "missing"
    return found


def require_libraries() -> None:
    missing = [n for n, v in library_versions().items() if v == "missing"]
    if missing:
        raise TrainingUnavailable(
            f"학습 라이브러리가 설치되지 않았습니다({', '.join(missing)}). pip install 'hanchang[train]' 후 다시 "
            f"시도하세요. (training libraries missing: {', '.join(missing)}; install hanchang[train])")


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class Plan:
    base_gguf: Path
    train: list[dict[str, Any]]
    valid: list[dict[str, Any]]
    hyper: Hyperparameters
    seed: int
    out_dir: Path
    max_length: int = MAX_LENGTH
    threads: int | None = None


@dataclass
class Outcome:
    state: dict[str, Any]  # the adapter's tensors (PEFT names)
    steps: int
    trained_tokens: int
    curve: list[dict[str, Any]] = field(default_factory=list)
    cancelled: bool = False
    train_seconds: float = 0.0  # the steps alone (no loading)


def _prompt_completion(example: dict[str, Any]) -> dict[str, Any]:
    messages = example["messages"]
    return {"prompt": messages[:-1], "completion": messages[-1:]}


def load_base(base_gguf: Path):
    """Tokenizer and model from the GGUF (dequantised to float32)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(base_gguf.parent), base_gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # The weights are plain float32 now; transformers still marks the model as GGUF-"quantized",
    # which its Trainer refuses to train. Nothing quantized is left: drop the mark.
    model.hf_quantizer, model.is_quantized = None, False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return tokenizer, model


def latest_checkpoint(out_dir: Path) -> Path | None:
    found = sorted(out_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    return found[-1] if found else None


def run(plan: Plan, report: Callable[[str, dict[str, Any]], None], cancelled: Callable[[], bool]) -> Outcome:
    """Train; `report(kind, data)` gets `metrics` (each log), `checkpoint` (each save) and
    `progress`; `cancelled()` is asked after every step."""
    require_libraries()
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback, set_seed
    from trl import SFTConfig, SFTTrainer

    if plan.threads:
        torch.set_num_threads(plan.threads)
    set_seed(plan.seed)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    tokenizer, model = load_base(plan.base_gguf)
    curve: list[dict[str, Any]] = []
    stopped = {"cancelled": False}

    class Reporter(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            metrics = {"step": state.global_step, "epoch": round(float(logs.get("epoch", state.epoch or 0)), 4)}
            names = {"loss": "train_loss", "mean_token_accuracy": "train_mean_token_accuracy",
                     "eval_loss": "valid_loss", "eval_mean_token_accuracy": "valid_mean_token_accuracy",
                     "learning_rate": "learning_rate"}
            metrics |= {ours: float(logs[theirs]) for theirs, ours in names.items() if theirs in logs}
            if len(metrics) > 2:
                curve.append(metrics)
                report("metrics", metrics)

        def on_step_end(self, args, state, control, **kwargs):
            report("progress", {"step": state.global_step, "total_steps": state.max_steps})
            if cancelled():
                stopped["cancelled"] = True
                control.should_training_stop = True
                control.should_save = False

        def on_save(self, args, state, control, **kwargs):
            report("checkpoint", {"step": state.global_step,
                                  "path": str(Path(args.output_dir) / f"checkpoint-{state.global_step}"),
                                  "metrics": curve[-1] if curve else {}})

    use_cpu = device() == "cpu"
    # On the CPU one sequence at a time, its gradients accumulated to the batch: the same steps,
    # without the batch's vocabulary-wide logits in memory at once (GBs for a 150k vocabulary).
    micro = 1 if use_cpu else plan.hyper.batch_size
    config = SFTConfig(
        output_dir=str(plan.out_dir), num_train_epochs=plan.hyper.n_epochs,
        per_device_train_batch_size=micro, per_device_eval_batch_size=micro,
        gradient_accumulation_steps=plan.hyper.batch_size // micro,
        learning_rate=plan.hyper.learning_rate, lr_scheduler_type="linear", warmup_steps=0,
        logging_steps=1, save_strategy="epoch", save_total_limit=2,
        eval_strategy="epoch" if plan.valid else "no", report_to=[], seed=plan.seed, data_seed=plan.seed,
        max_length=plan.max_length, use_cpu=use_cpu, bf16=not use_cpu and torch.cuda.is_bf16_supported(),
        dataloader_num_workers=0, disable_tqdm=True, gradient_checkpointing=False)
    lora = LoraConfig(r=plan.hyper.lora_rank, lora_alpha=plan.hyper.lora_alpha, lora_dropout=0.0,
                      target_modules=TARGET_MODULES, task_type="CAUSAL_LM")
    valid = Dataset.from_list([_prompt_completion(e) for e in plan.valid]) if plan.valid else None
    trainer = SFTTrainer(model=model, args=config, processing_class=tokenizer, peft_config=lora,
                         train_dataset=Dataset.from_list([_prompt_completion(e) for e in plan.train]),
                         eval_dataset=valid, callbacks=[Reporter()])
    resume = latest_checkpoint(plan.out_dir)
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    seen = [float(e["num_tokens"]) for e in trainer.state.log_history if "num_tokens" in e and "loss" in e]
    tokens = int(seen[-1]) if seen else 0
    from peft import get_peft_model_state_dict

    state = {k: v.detach().cpu() for k, v in get_peft_model_state_dict(trainer.model).items()}
    if not stopped["cancelled"]:  # PEFT's own format too (adapter_config.json + safetensors), for vLLM
        trainer.model.save_pretrained(str(plan.out_dir / "adapter"))
    return Outcome(state, trainer.state.global_step, tokens, curve, stopped["cancelled"],
                   float(result.metrics.get("train_runtime", 0.0)))
