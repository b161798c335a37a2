"""`hanchang ingest`, `hanchang search` and `hanchang collections …`."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from hanchang.assist.embedding_calls import command_line_embedder
from hanchang.cli.common import audit_admin, err, fail, open_database, out, settings_or_exit
from hanchang.config import Settings
from hanchang.core.errors import HanchangError
from hanchang.core.grades import Grade
from hanchang.knowledge import collections as kc
from hanchang.knowledge.index_store import IndexStore
from hanchang.knowledge.ingest import discover
from hanchang.knowledge.operations import (
    SAMPLE_COLLECTION,
    IngestReport,
    ingest_paths,
    ingest_sources,
    sample_sources,
)
from hanchang.knowledge.search import search as run_search
from hanchang.store.db import Database
from hanchang.store.tables import Agency, Collection

collections_app = typer.Typer(help="Knowledge bases (지식베이스).", no_args_is_help=True)

_STATUS_KO = {"ingested": "추가", "updated": "갱신", "new_version": "새 버전", "unchanged": "변경 없음",
              "failed": "실패", "pruned": "삭제"}


def _grade(value: str | None) -> Grade | None:
    try:
        return Grade.parse(value) if value else None
    except ValueError as exc:
        raise fail(str(exc)) from None


def _date(value: str | None, option: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        raise fail(f"{option} {value!r}: use a date like 2026-01-31") from None


def _default_agency(settings: Settings) -> str:
    return settings.agencies[0].code if settings.agencies else "DEMO"


def _collection(db: Database, name: str, agency: str | None) -> Collection:
    try:
        with db.session() as session:
            found = kc.find_for_operator(session, name, agency)
            if found is None:
                raise fail(f"no collection '{name}'" + (f" in agency {agency}" if agency else "")
                           + "; see: hanchang collections list")
            _ = found.agency.code
            return found
    except HanchangError as exc:
        raise fail(str(exc)) from None


def print_report(report: IngestReport) -> None:
    table = Table("file 파일", "result 결과", "chunks", "note 비고", show_lines=False)
    for r in report.results:
        note = r.reason or "; ".join(r.warnings) or (f"v{r.version}" if r.version else "")
        style = "red" if r.status == "failed" else None
        table.add_row(r.name, f"{_STATUS_KO.get(r.status, r.status)} ({r.status})", str(r.chunks), note,
                      style=style)
    out.print(table)
    out.print(f"ingested {report.count('ingested')} · updated {report.count('updated', 'new_version')} · "
              f"unchanged {report.count('unchanged')} · failed {report.count('failed')} · "
              f"pruned {report.count('pruned')}")


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (recursive).")],
    collection: Annotated[str, typer.Option("--collection", help="Collection name (created if new).")],
    grade: Annotated[str | None, typer.Option(help="O (공개), S (민감) or C (기밀); default: the "
                     "collection's grade, O for a new one.")] = None,
    agency: Annotated[str | None, typer.Option(help="Agency code (default: the first configured).")] = None,
    effective_from: Annotated[str | None, typer.Option("--effective-from",
                              help="Date from which this version is in force (YYYY-MM-DD).")] = None,
    prune: Annotated[bool, typer.Option("--prune", help="Remove documents whose files are gone "
                     "from the given folders.")] = False,
    common: Annotated[bool, typer.Option("--common", help="Share a new collection with every "
                      "agency (공통).")] = False,
) -> None:
    """Ingest documents into a collection: HWP, HWPX, PDF, DOCX, XLSX, CSV, HTML, MD, TXT."""
    settings = settings_or_exit()
    db = open_database(settings)
    level, when = _grade(grade), _date(effective_from, "--effective-from")
    agency_code = agency or _default_agency(settings)
    try:
        with db.session() as session:
            target = kc.find_for_operator(session, collection, agency)
            if target is None:
                target = kc.create(session, agency_code, collection, level or Grade.OPEN, common)
                audit_admin(session, "collections.create", agency_code, collection=collection,
                            grade=target.grade, common=common)
            target_id = target.id
    except HanchangError as exc:
        raise fail(str(exc)) from None
    sources, _, _ = discover(paths)
    store = IndexStore(settings.home, db, settings.knowledge.index)
    with command_line_embedder(settings, db) as embedder, \
            Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                     TextColumn("{task.fields[name]}"), console=err, transient=True) as bar:
        task = bar.add_task("ingesting 처리 중", total=len(sources), name="")
        report = ingest_paths(db, store, target_id, paths, level, when, prune,
                              progress=lambda name: bar.update(task, advance=1, name=name),
                              embedder=embedder)
    print_report(report)
    if not report.usable:
        raise typer.Exit(1)


def search(
    query: Annotated[str | None, typer.Argument(help="The question or keywords.")] = None,
    collection: Annotated[list[str], typer.Option("--collection", help="Collection name (repeatable).")] = (),
    agency: Annotated[str | None, typer.Option(help="Agency code, when a name exists in several.")] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=100)] = 5,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Search the versions in force on this "
                     "date (YYYY-MM-DD).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    queries: Annotated[Path | None, typer.Option("--queries", help="JSONL of {\"q\": …}; prints one "
                       "JSON line per query.")] = None,
) -> None:
    """Search collections; results carry text, source, section, score, grade and version."""
    if not collection:
        raise fail("give at least one --collection")
    if (query is None) == (queries is None):
        raise fail("give either a QUERY or --queries FILE.jsonl")
    settings = settings_or_exit()
    db = open_database(settings)
    targets = [_collection(db, name, agency) for name in collection]
    store = IndexStore(settings.home, db, settings.knowledge.index)
    day = _date(as_of, "--as-of")
    with command_line_embedder(settings, db) as embedder:
        _search(store, targets, query, queries, top_k, day, embedder, as_json)


def _search(store, targets, query, queries, top_k, day, embedder, as_json) -> None:
    if queries is not None:
        if not queries.is_file():
            raise fail(f"{queries}: file not found")
        for number, line in enumerate(queries.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                q = json.loads(line)["q"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise fail(f"{queries}:{number}: expected a JSON object with a \"q\" field") from None
            results = run_search(store, targets, str(q), top_k, day, embedder=embedder)
            print(json.dumps({"q": q, "results": [r.as_dict() for r in results]}, ensure_ascii=False))
        return
    results = run_search(store, targets, query, top_k, day, embedder=embedder)
    if as_json:
        print(json.dumps({"results": [r.as_dict() for r in results]}, ensure_ascii=False))
        return
    if not results:
        out.print("검색 결과가 없습니다 (no results).")
    for rank, r in enumerate(results, 1):
        flag = " [superseded 이전 버전]" if r.superseded else ""
        out.print(f"[bold]{rank}. {r.title}[/bold] · {r.section or '-'} · 등급 {r.grade} · v{r.version}"
                  f"{flag} · score {r.score:.4f}", highlight=False)
        out.print(f"   {r.text[:300]}", highlight=False)


def ingest_sample(settings: Settings, db: Database) -> None:
    """The sample corpus, as the common collection 'sample' of the first agency (idempotent)."""
    agency_code = _default_agency(settings)
    with db.session() as session:
        target = kc.find_for_operator(session, SAMPLE_COLLECTION, agency_code)
        if target is None:
            target = kc.create(session, agency_code, SAMPLE_COLLECTION, Grade.OPEN, is_common=True,
                               description="샘플 지식베이스: 공공부문 초거대 AI 관련 공개 문서 5건")
        target_id = target.id
    with command_line_embedder(settings, db) as embedder:
        store = IndexStore(settings.home, db, settings.knowledge.index)
        report = ingest_sources(db, store, target_id, sample_sources(), embedder=embedder)
    out.print(f"Sample knowledge base 샘플 지식베이스 '{SAMPLE_COLLECTION}': "
              f"{report.count('ingested', 'updated', 'unchanged')} documents ready")


@collections_app.command("list")
def collections_list() -> None:
    """List collections with their agency, grade and size."""
    from sqlalchemy import func, select

    from hanchang.store.tables import Chunk, Document

    db = open_database(settings_or_exit())
    table = Table("id", "agency", "name", "grade", "common", "documents", "chunks")
    with db.session() as session:
        rows = session.execute(
            select(Collection.id, Agency.code, Collection.name, Collection.grade, Collection.is_common,
                   select(func.count()).select_from(Document)
                   .where(Document.collection_id == Collection.id).scalar_subquery(),
                   select(func.count()).select_from(Chunk)
                   .where(Chunk.collection_id == Collection.id).scalar_subquery())
            .join(Agency, Agency.id == Collection.agency_id).order_by(Agency.code, Collection.name))
        for row in rows:
            table.add_row(str(row[0]), row[1], row[2], row[3], "공통" if row[4] else "", str(row[5]),
                          str(row[6]))
    out.print(table)


@collections_app.command("grade")
def collections_grade(
    name: str,
    grade: Annotated[str, typer.Argument(help="O, S or C")],
    agency: Annotated[str | None, typer.Option(help="Agency code.")] = None,
) -> None:
    """Change a collection's grade (recorded in the audit trail)."""
    settings = settings_or_exit()
    db = open_database(settings)
    level = _grade(grade)
    target = _collection(db, name, agency)
    with db.session() as session:
        row = session.get(Collection, target.id)
        before, row.grade = row.grade, level.value
        kc.touch(row)
        audit_admin(session, "collections.grade", target.agency.code, collection=name,
                    before=before, after=level.value)
    out.print(f"{name}: grade {before} -> {level.value}")


@collections_app.command("delete")
def collections_delete(
    name: str,
    agency: Annotated[str | None, typer.Option(help="Agency code.")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
) -> None:
    """Delete a collection with all its documents."""
    settings = settings_or_exit()
    db = open_database(settings)
    target = _collection(db, name, agency)
    if not yes and sys.stdin.isatty() and not typer.confirm(f"Delete collection '{name}'?"):
        raise typer.Exit(1)
    with db.session() as session:
        session.delete(session.get(Collection, target.id))
        audit_admin(session, "collections.delete", target.agency.code, collection=name)
    IndexStore(settings.home, db, settings.knowledge.index).forget(target.id)
    out.print(f"deleted collection '{name}'")
