"""`hanchang eval …`: evaluation sets, runs, results and paired comparisons (평가).

`hanchang eval run` runs in this process, through the same answer path as the server (grade
policy, personal-data guard, usage and audit included), printing each item as it is scored;
the run is stored like one made through `/v1/evals`, so `show` and `compare` and the window
see it. It acts as a named user of an agency (`--agency`, `--user`), with that user's rights.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hanchang.cli.common import acting_user, fail, open_database, out, settings_or_exit
from hanchang.core.errors import HanchangError
from hanchang.core.grades import Grade
from hanchang.evals import compare as paired
from hanchang.evals import datasets, results, runner, runs, scorers
from hanchang.store.accounts import AccountError
from hanchang.store.tables import EvalRun

eval_app = typer.Typer(help="Evaluate answers: sets, runs, comparisons (평가).", no_args_is_help=True)
AgencyOption = Annotated[str, typer.Option("--agency", help="Agency code.")]
UserOption = Annotated[str, typer.Option("--user", help="Runs as this user of the agency (their rights).")]
SET_HELP = "A stored set (name or name@version) or a shipped one: " + ", ".join(datasets.SHIPPED)


def _in_session(work):
    """`work(session)` on the configured database; a user's error ends the command with its message."""
    settings = settings_or_exit()
    db = open_database(settings)
    try:
        with db.session() as session:
            return work(session)
    except (OSError, ValueError, HanchangError, AccountError) as exc:
        raise fail(getattr(exc, "message", None) or str(exc)) from None
    finally:
        db.dispose()


def _grade(value: str) -> Grade:
    try:
        return Grade.parse(value)
    except ValueError as exc:
        raise fail(str(exc)) from None


@eval_app.command("import")
def eval_import(path: Annotated[Path, typer.Argument(help="JSONL file (or KorQuAD JSON with --korquad).")],
                name: Annotated[str | None, typer.Option("--name", help="Set name (default: the file's).")] = None,
                grade: Annotated[str, typer.Option("--grade", help="C, S or O: the most sensitive data "
                                                   "the items hold.")] = "O",
                korquad: Annotated[bool, typer.Option("--korquad", help="Read a KorQuAD 1.0 file.")] = False,
                limit: Annotated[int | None, typer.Option("--limit", help="KorQuAD: a seeded sample of "
                                                          "this many questions.")] = None,
                agency: AgencyOption = "DEMO", user: UserOption = "admin") -> None:
    """Store a set as a new version (the same items again: the version they already are)."""
    def work(session):
        text = path.read_text(encoding="utf-8-sig")
        items = datasets.from_korquad(json.loads(text), limit) if korquad else datasets.parse_jsonl(text)
        row = datasets.save(session, acting_user(session, agency, user), name or path.stem, items,
                            _grade(grade), source=path.name)
        return datasets.describe(row)
    described = _in_session(work)
    out.print(f"평가 세트 {described['name']} 버전 {described['version']} · {described['items']}개 항목 · "
              f"{described['grade']} · sha256 {described['sha256'][:12]}", highlight=False)


@eval_app.command("sets")
def eval_sets(agency: AgencyOption = "DEMO", user: UserOption = "admin") -> None:
    """The agency's sets (latest versions) and the shipped ones."""
    rows = _in_session(lambda session: [datasets.describe(r) for r in
                                        datasets.list_sets(session, acting_user(session, agency, user))])
    table = Table("set", "version", "items", "grade", "sha256", "source")
    for row in rows:
        table.add_row(row["name"], str(row["version"]), str(row["items"]), row["grade"], row["sha256"][:12],
                      row["source"] or "")
    out.print(table)
    out.print("함께 제공되는 세트 / shipped: " + ", ".join(datasets.SHIPPED), highlight=False)


def _criteria(items: list[datasets.Item], names: str | None, judge: str | None) -> list[dict]:
    if names:
        chosen = [{"type": n.strip(), "name": n.strip()} for n in names.split(",") if n.strip()]
    elif all(i.expect == "refusal" for i in items):
        chosen = [{"type": "refusal", "name": "refusal"}]
    elif any(i.context for i in items):
        chosen = [{"type": t, "name": t} for t in ("key_fact", "exact_match", "f1", "number_faithfulness")]
    else:
        chosen = [dict(c) for c in scorers.DEFAULT_CRITERIA]
    if judge:
        chosen.append({"type": "judge", "name": "judge", "model": judge})
    return scorers.check_criteria(chosen)


@eval_app.command("run")
def eval_run(dataset: Annotated[str, typer.Argument(help=SET_HELP)],
             model: Annotated[str, typer.Option("--model", help="Model name or alias, or agent:<id>.")] = "local",
             collections: Annotated[str | None, typer.Option("--collections", help="Ground answers on these "
                                                             "knowledge bases (comma-separated).")] = None,
             criteria: Annotated[str | None, typer.Option("--criteria", help="Comma-separated: " +
                                                          ", ".join(scorers.HANCHANG_TYPES))] = None,
             judge: Annotated[str | None, typer.Option("--judge", help="Add a judge model's score.")] = None,
             limit: Annotated[int | None, typer.Option("--limit", help="Only the first N items.")] = None,
             name: Annotated[str | None, typer.Option("--name", help="Name of the run.")] = None,
             agency: AgencyOption = "DEMO", user: UserOption = "admin",
             as_json: Annotated[bool, typer.Option("--json", help="Print the run as JSON.")] = False) -> None:
    """Run a set against a target here, item by item, and print what it scored."""
    settings = settings_or_exit()
    db = open_database(settings)
    try:
        described = asyncio.run(_run(settings, db, dataset, model, collections, criteria, judge, limit, name,
                                     agency, user, quiet=as_json))
    except (HanchangError, AccountError) as exc:
        raise fail(getattr(exc, "message", None) or str(exc)) from None
    finally:
        db.dispose()
    if as_json:
        out.print_json(json.dumps(described, ensure_ascii=False))
    else:
        _print_run(described)


async def _run(settings, db, dataset, model, collections, criteria, judge, limit, name, agency, user, *,
               quiet: bool) -> dict:
    from hanchang.assist.services import SERVICES
    from hanchang.assist.services.custom import catalogue
    from hanchang.server import running_platform

    ref, _, version = dataset.partition("@")
    with db.session() as session:
        principal = acting_user(session, agency, user)
        stored = datasets.get(session, principal, ref, int(version) if version else None)
        items = datasets.items_of(stored)
        chosen = _criteria(items, criteria, judge)
        created = runs.create_eval(session, principal, f"{stored.name} · CLI", None, chosen)
        eval_id, stored_name, stored_version, grade = created.id, stored.name, stored.version, stored.grade
    source = {"type": "dataset", "name": stored_name, "version": stored_version}
    if limit:
        source = {"type": "file_content", "content": [{"item": i.as_json()} for i in items[:limit]]}
    data_source = {"type": "completions", "model": model, "source": source,
                   "collections": [c.strip() for c in collections.split(",") if c.strip()] if collections else [],
                   "data_grade": grade}
    services = catalogue(SERVICES, settings.services.custom)
    async with running_platform(settings, db, services, run_evals=False) as platform:
        run = await asyncio.to_thread(runs.create_run, platform, principal, eval_id, name, data_source)
        if runner.claim(db, run.id) is None:
            raise RuntimeError(f"run {run.id} was taken by another process")

        def progress(done: int, total: int, item, sample, results) -> None:
            if quiet:
                return
            marks = " ".join(f"{r.name}={'✓' if r.passed else '✗' if r.passed is False else '-'}" for r in results)
            error = f" [red]{sample['error']['code']}[/red]" if sample.get("error") else ""
            out.print(f"[{done}/{total}] {item.id} {sample.get('latency_s', 0):.1f}s {marks}{error}", highlight=False)
        await runner.execute(platform, run.id, progress)
    with db.session() as session:
        return results.describe_run(session, session.get(EvalRun, run.id))


def _print_run(run: dict) -> None:
    extra = run["hanchang"]
    dataset = extra["dataset"]
    out.print(f"\n[bold]{run['name']}[/bold]  {run['id']}  ({run['status']})", highlight=False)
    out.print(f"model {run['model']} · set {dataset['name'] or 'inline'}"
              f"{'@' + str(dataset['version']) if dataset['version'] else ''} · sha256 {dataset['sha256'][:12]} · "
              f"grade {extra['grade']} · commit {(extra['config'].get('commit') or '-')[:10]}", highlight=False)
    table = Table("criterion / 기준", "pass rate", "passed", "failed", "mean score")
    for row in extra["scores"]:
        rate = f"{row['pass_rate'] * 100:.1f} %" if row["pass_rate"] is not None else "-"
        table.add_row(row["testing_criteria"], rate, str(row["passed"]), str(row["failed"]),
                      f"{row['mean_score']:.3f}" if row["mean_score"] is not None else "-")
    out.print(table)
    counts, latency = run["result_counts"], extra["latency_s"]
    out.print(f"items {counts['total']} · all criteria passed {counts['passed']} · failed {counts['failed']} · "
              f"errored {counts['errored']} · latency p50 {latency['p50']} s, p90 {latency['p90']} s",
              highlight=False)


@eval_app.command("show")
def eval_show(run_id: Annotated[str, typer.Argument(help="Run id (evalrun_…).")],
              items: Annotated[bool, typer.Option("--items", help="Every item with its answer.")] = False,
              agency: AgencyOption = "DEMO", user: UserOption = "admin") -> None:
    """A run's scores (and, with --items, each answer and its results)."""
    def work(session):
        run = runs.find_run(session, acting_user(session, agency, user), run_id)
        return results.describe_run(session, run), \
            [results.describe_item(run, r) for r in results.output_items(session, run)] if items else []
    described, rows = _in_session(work)
    _print_run(described)
    for row in rows:
        marks = " ".join(f"{r['name']}={'✓' if r['passed'] else '✗' if r['passed'] is False else '-'}"
                         for r in row["results"])
        out.print(f"\n[bold]{row['datasource_item'].get('id')}[/bold] {row['status']} {marks}", highlight=False)
        out.print(f"  Q: {row['datasource_item'].get('question')}", highlight=False, markup=False)
        out.print(f"  A: {row['sample']['output'][0]['content'][:400]}", highlight=False, markup=False)


@eval_app.command("compare")
def eval_compare(base: Annotated[str, typer.Argument(help="The run to compare against (before).")],
                 other: Annotated[str, typer.Argument(help="The run compared (after).")],
                 agency: AgencyOption = "DEMO", user: UserOption = "admin",
                 as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
                 gate: Annotated[str | None, typer.Option("--gate", help="Exit 1 unless OTHER may replace BASE "
                                                          "on this criterion (a promotion gate).")] = None,
                 guard: Annotated[str | None, typer.Option("--guard", help="With --gate: criteria that may not "
                                                           "fall by more than --margin (comma-separated).")] = None,
                 margin: Annotated[float, typer.Option("--margin", help="Allowed fall of guarded pass rates.")] = 0.0,
                 ) -> None:
    """Two runs item by item: flipped items, per-criterion deltas, McNemar and bootstrap."""
    def work(session):
        principal = acting_user(session, agency, user)
        return paired.compare(session, runs.find_run(session, principal, base),
                              runs.find_run(session, principal, other))
    result = _in_session(work)
    decision = paired.gate(result, gate, margin=margin, guarded=[g.strip() for g in (guard or "").split(",")
                                                                if g.strip()]) if gate else None
    if as_json:
        out.print_json(json.dumps({**result, **({"gate": decision} if decision else {})}, ensure_ascii=False))
        if decision and not decision["promote"]:
            raise typer.Exit(1)
        return
    out.print(f"{result['items']} items paired · same set: {'yes' if result['same_dataset'] else 'no'}",
              highlight=False)
    table = Table("criterion / 기준", "base", "other", "→pass", "→fail", "McNemar p", "Δ score [95% CI]")
    for row in result["criteria"]:
        rate = row["pass_rate"]
        delta = row["score_delta"]
        shown = "-" if delta["mean"] is None else \
            f"{delta['mean']:+.3f} [{delta['ci95'][0]:+.3f}, {delta['ci95'][1]:+.3f}]"
        table.add_row(row["criterion"], _pct(rate["base"]), _pct(rate["other"]), str(row["flipped_to_pass"]),
                      str(row["flipped_to_fail"]), f"{row['mcnemar_p']:.3f}", shown)
    out.print(table)
    for flip in result["flipped"]:
        out.print(f"  {flip['item']} · {flip['criterion']} → {flip['to']}", highlight=False, markup=False)
    if decision:
        verdict = "promote / 승격 가능" if decision["promote"] else "keep the base / 승격 불가"
        out.print(f"gate {gate}: {verdict} {'; '.join(decision['reasons'])}", highlight=False, markup=False)
        if not decision["promote"]:
            raise typer.Exit(1)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"
