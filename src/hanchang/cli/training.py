"""`hanchang datasets …` and `hanchang finetune …`: fine-tuning datasets, jobs and the models
they make (파인튜닝). Commands act as a named user of an agency (`--agency`, `--user`), with that
user's rights: datasets and jobs are an agency admin's."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Column, Table

from hanchang.cli.common import acting_user, fail, open_database, out, settings_or_exit
from hanchang.core.errors import HanchangError
from hanchang.core.grades import Grade
from hanchang.store.accounts import AccountError

datasets_app = typer.Typer(help="Fine-tuning datasets (학습 데이터셋).", no_args_is_help=True)
finetune_app = typer.Typer(help="Fine-tuning jobs and the models they make (파인튜닝).", no_args_is_help=True)
AgencyOption = Annotated[str, typer.Option("--agency", help="Agency code.")]
UserOption = Annotated[str, typer.Option("--user", help="Acts as this user of the agency (their rights).")]


def _with_db(work):
    settings = settings_or_exit()
    db = open_database(settings)
    try:
        return work(settings, db)
    except (OSError, ValueError, HanchangError, AccountError) as exc:
        raise fail(getattr(exc, "message", None) or str(exc)) from None
    finally:
        db.dispose()


def _in_session(work):
    def run(_settings, db):
        with db.session() as session:
            return work(session)
    return _with_db(run)


def _on_platform(work):
    """`await work(platform)` on a running platform (the gateway, for a teacher or the gate)."""
    from hanchang.assist.services import SERVICES
    from hanchang.assist.services.custom import catalogue
    from hanchang.server import running_platform

    async def go(settings, db):
        async with running_platform(settings, db, catalogue(SERVICES, settings.services.custom),
                                    run_evals=False) as platform:
            return await work(platform)
    return _with_db(lambda settings, db: asyncio.run(go(settings, db)))


# -- datasets ---------------------------------------------------------------------------------
@datasets_app.command("create")
def datasets_create(
        name: Annotated[str, typer.Argument(help="Dataset name.")],
        file: Annotated[Path | None, typer.Option("--file", help="OpenAI chat-format JSONL.")] = None,
        feedback: Annotated[bool, typer.Option("--feedback", help="From the window's reviewed answers.")] = False,
        collection: Annotated[str | None, typer.Option("--collection", help="Generate from a collection.")] = None,
        teacher: Annotated[str, typer.Option("--teacher", help="Model that writes the questions.")] = "local",
        passages: Annotated[int, typer.Option("--passages", help="Passages to generate from.")] = 40,
        grade: Annotated[str | None, typer.Option("--grade", help="C, S or O for a file (default S).")] = None,
        holdout: Annotated[float, typer.Option("--holdout", help="Share held out for the eval gate.")] = 0.1,
        seed: Annotated[int, typer.Option("--seed")] = 0,
        agency: AgencyOption = "DEMO", user: UserOption = "admin") -> None:
    """A new version of a dataset from a file, reviewed answers or a collection."""
    from hanchang.training import datasets, sources

    if sum(bool(x) for x in (file, feedback, collection)) != 1:
        raise fail("Give exactly one source: --file, --feedback or --collection.")

    async def generate(platform):
        with platform.db.session() as session:
            principal = acting_user(session, agency, user)
        return await sources.from_collection(platform, principal, collection, teacher, passages_limit=passages,
                                             seed=seed)

    if collection:
        built = _on_platform(generate)
    elif feedback:
        built = _in_session(lambda s: sources.from_feedback(s, acting_user(s, agency, user)))
    else:
        try:
            built = sources.Built(datasets.parse_jsonl(file.read_bytes()), Grade.parse(grade or "S"),
                                  f"upload:{file.name}")
        except (OSError, ValueError, HanchangError) as exc:
            raise fail(getattr(exc, "message", None) or str(exc)) from None
    row = _in_session(lambda s: datasets.describe(datasets.save(
        s, acting_user(s, agency, user), name, built.examples, built.grade, built.source, holdout=holdout, seed=seed)))
    extra = row["hanchang"]
    out.print(f"데이터셋 {extra['name']} v{extra['version']} ({row['id']}) · 학습 {extra['train']} / "
              f"검증 {extra['holdout']} · 등급 {extra['grade']} · 개인정보 치환 {extra['pii_replaced']} · "
              f"sha256 {extra['sha256'][:12]}",
              highlight=False)


@datasets_app.command("list")
def datasets_list(agency: AgencyOption = "DEMO", user: UserOption = "admin") -> None:
    from hanchang.training import datasets

    rows = _in_session(lambda s: [datasets.describe(r)
                                  for r in datasets.list_datasets(s, acting_user(s, agency, user))])
    table = Table("name", "v", "train", "held-out", "grade", "source")
    table.columns.insert(0, Column("file", no_wrap=True))
    for row in rows:
        extra = row["hanchang"]
        table.add_row(row["id"], extra["name"], str(extra["version"]), str(extra["train"]), str(extra["holdout"]),
                      extra["grade"], extra["source"])
    out.print(table)


@datasets_app.command("show")
def datasets_show(ref: Annotated[str, typer.Argument(help="file-… or a name (latest version).")],
                  agency: AgencyOption = "DEMO", user: UserOption = "admin") -> None:
    from hanchang.training import datasets

    out.print_json(json.dumps(_in_session(lambda s: datasets.describe(
        datasets.get(s, acting_user(s, agency, user), ref))), ensure_ascii=False))


@datasets_app.command("split")
def datasets_split(ref: Annotated[str, typer.Argument(help="file-… or a name.")],
                   holdout: Annotated[float, typer.Option("--holdout")] = 0.1,
                   seed: Annotated[int, typer.Option("--seed")] = 0,
                   agency: AgencyOption = "DEMO", user: UserOption = "admin") -> None:
    """Split the same examples again, as a new version."""
    from hanchang.training import datasets

    def work(session):
        principal = acting_user(session, agency, user)
        return datasets.describe(datasets.resplit(session, principal, datasets.get(session, principal, ref),
                                                  holdout, seed))
    row = _in_session(work)
    out.print(f"{row['hanchang']['name']} v{row['hanchang']['version']} ({row['id']}): 학습 {row['hanchang']['train']}"
              f" / 검증 {row['hanchang']['holdout']}", highlight=False)


@datasets_app.command("delete")
def datasets_delete(ref: Annotated[str, typer.Argument(help="file-… or a name (latest version).")],
                    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
                    agency: AgencyOption = "DEMO", user: UserOption = "admin") -> None:
    from hanchang.training import datasets

    if not yes:
        typer.confirm(f"Delete the examples of {ref}? 예시가 지워집니다", abort=True)

    def work(session):
        principal = acting_user(session, agency, user)
        row = datasets.get(session, principal, ref)
        datasets.delete(session, principal, row)
        return row.file_id
    out.print(f"deleted {_in_session(work)}")


# -- jobs -------------------------------------------------------------------------------------
@finetune_app.command("create")
def finetune_create(
        dataset: Annotated[str, typer.Option("--dataset", help="Training file (file-… or a dataset name).")],
        model: Annotated[str, typer.Option("--model", help="Base model.")] = "local",
        validation: Annotated[str | None, typer.Option("--validation", help="Validation file.")] = None,
        epochs: Annotated[str, typer.Option("--epochs", help="n_epochs or auto.")] = "auto",
        batch_size: Annotated[str, typer.Option("--batch-size", help="batch_size or auto.")] = "auto",
        lr_multiplier: Annotated[str, typer.Option("--lr-multiplier", help="lr multiplier or auto.")] = "auto",
        rank: Annotated[str, typer.Option("--rank", help="LoRA rank or auto.")] = "auto",
        seed: Annotated[int | None, typer.Option("--seed")] = None,
        suffix: Annotated[str | None, typer.Option("--suffix")] = None,
        reproduce: Annotated[str | None, typer.Option("--reproduce", help="Rerun a job's manifest.")] = None,
        agency: AgencyOption = "DEMO", user: UserOption = "admin") -> None:
    """Queue a job; a server (or `hanchang finetune worker`) runs it."""
    from hanchang.training import jobs

    def number(value: str, kind):
        return value if value == "auto" else kind(value)

    asked = {"n_epochs": number(epochs, int), "batch_size": number(batch_size, int),
             "learning_rate_multiplier": number(lr_multiplier, float), "lora_rank": number(rank, int)}

    def work(settings, db):
        spec = next((s for s in settings.model_specs() if model in (s.name, *s.aliases)), None)
        if spec is None:
            raise fail(f"No model '{model}' is configured.")
        with db.session() as session:
            principal = acting_user(session, agency, user)
            training, chosen_seed, meta, hyper = dataset, seed, None, asked
            if reproduce:
                original = jobs.get(session, principal, reproduce)
                manifest = json.loads(original.manifest or "{}")
                training, chosen_seed = manifest["training_file"]["id"], original.seed
                hyper, meta = manifest["hyperparameters"], {"reproduces": original.id}
            job = jobs.create(session, principal, spec, training, validation, hyper, chosen_seed, suffix, meta)
            return jobs.describe(session, job)
    job = _with_db(work)
    out.print(f"{job['id']} {job['status']} · model {job['model']} · file {job['training_file']} · "
              f"grade {job['hanchang']['grade']} · seed {job['seed']}", highlight=False)


@finetune_app.command("list")
def finetune_list(agency: AgencyOption = "DEMO", user: UserOption = "admin") -> None:
    """The agency's jobs, newest first."""
    from hanchang.training import jobs

    rows = _in_session(lambda s: [jobs.describe(s, j) for j in jobs.list_jobs(s, acting_user(s, agency, user),
                                                                              limit=100)])
    table = Table("status", "progress", "model", "fine-tuned model", "grade")
    table.columns.insert(0, Column("job", no_wrap=True))
    for row in rows:
        table.add_row(row["id"], row["status"], f"{row['hanchang']['progress'] * 100:.0f} %", row["model"],
                      row["fine_tuned_model"] or "-", row["hanchang"]["grade"])
    out.print(table)


@finetune_app.command("show")
def finetune_show(job_id: Annotated[str, typer.Argument()], events: Annotated[int, typer.Option("--events")] = 10,
                  agency: AgencyOption = "DEMO", user: UserOption = "admin") -> None:
    """A job (OpenAI's object, with its manifest) and its latest events."""
    from hanchang.training import jobs

    def work(session):
        job = jobs.get(session, acting_user(session, agency, user), job_id)
        return jobs.describe(session, job), [jobs.describe_event(e) for e in jobs.events(session, job, limit=events)]
    described, found = _in_session(work)
    out.print_json(json.dumps(described, ensure_ascii=False))
    for event in reversed(found):
        out.print(f"[{event['level']}] {event['message']}", highlight=False, markup=False)


@finetune_app.command("cancel")
def finetune_cancel(job_id: Annotated[str, typer.Argument()], agency: AgencyOption = "DEMO",
                    user: UserOption = "admin") -> None:
    from hanchang.training import jobs

    def work(session):
        principal = acting_user(session, agency, user)
        return jobs.cancel(session, principal, jobs.get(session, principal, job_id)).status
    out.print(f"{job_id}: {_in_session(work)} (a running job stops after its current step)")


@finetune_app.command("worker")
def finetune_worker(threads: Annotated[int | None, typer.Option("--threads")] = None,
                    once: Annotated[bool, typer.Option("--once", help="One job, then stop.")] = False) -> None:
    """Run queued jobs here, one at a time, each in its own process (a training host)."""
    from hanchang.training.runner import TrainingWorker, worker_settings_file

    def work(settings, db):
        worker = TrainingWorker(db, settings.home, worker_settings_file(settings),
                                threads=threads or settings.training.threads)
        if once:
            return worker.run_one()
        out.print("training worker started; Ctrl+C stops it (a job in hand finishes in its own process)")
        with contextlib.suppress(KeyboardInterrupt):
            worker.loop()
        return True
    _with_db(work)


@finetune_app.command("models")
def finetune_models(agency: AgencyOption = "DEMO", user: UserOption = "admin") -> None:
    """The agency's fine-tuned models and their state (awaiting_eval, served, rejected, retired)."""
    from hanchang.training import models

    rows = _in_session(lambda s: [models.describe(m) for m in models.list_models(s, acting_user(s, agency, user))])
    table = Table("status", "base", "grade", "gate")
    table.columns.insert(0, Column("model", no_wrap=True))
    for row in rows:
        gate = row["gate"]
        table.add_row(row["id"], row["status"], row["base_model"], row["grade"],
                      "-" if gate is None else ("promote" if gate["promote"] else "reject"))
    out.print(table)


@finetune_app.command("gate")
def finetune_gate(model_id: Annotated[str, typer.Argument()],
                  limit: Annotated[int | None, typer.Option("--limit", help="Held-out items to score.")] = None,
                  agency: AgencyOption = "DEMO", user: UserOption = "admin") -> None:
    """Score the model and its base (held-out split and regression sets); promote or reject it."""
    from hanchang.training import models

    async def work(platform):
        with platform.db.session() as session:
            principal = acting_user(session, agency, user)
        return await models.gate(platform, principal, model_id, limit=limit)
    verdict = _on_platform(work)
    for row in verdict["sets"]:
        out.print(f"{row['set']}: {row['criterion']} {'✓' if row['promote'] else '✗'} {'; '.join(row['reasons'])}",
                  highlight=False)
    out.print(f"{model_id}: {'served (promoted)' if verdict['promote'] else 'rejected'}")


@finetune_app.command("rollback")
def finetune_rollback(model_id: Annotated[str, typer.Argument()], agency: AgencyOption = "DEMO",
                      user: UserOption = "admin") -> None:
    """Stop serving a promoted model at once."""
    from hanchang.training import models

    def work(session):
        principal = acting_user(session, agency, user)
        return models.rollback(session, principal, models.get(session, principal, model_id)).status
    out.print(f"{model_id}: {_in_session(work)}")
