"""`hanchang slo`, `hanchang report` and `hanchang budget …`: operations from the command line."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hanchang.cli.common import fail, open_database, operator, out, settings_or_exit
from hanchang.core.errors import HanchangError

budget_app = typer.Typer(help="Budgets per agency and user (예산).", no_args_is_help=True)


def _pct(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}%"


def _met(value: bool | None) -> str:
    return {True: "[green]충족 met[/green]", False: "[red]미달 missed[/red]", None: "-"}[value]


def slo(window: Annotated[str, typer.Option(help="day | week | month")] = "month",
        agency: Annotated[str | None, typer.Option(help="One agency's calls only.")] = None) -> None:
    """SLOs (guideline 3.2.5): targets, measured values and error budgets."""
    from hanchang.ops.slo import WINDOWS, measure

    if window not in WINDOWS:
        raise typer.BadParameter("--window must be day, week or month")
    settings = settings_or_exit()
    report = measure(open_database(settings), settings.slo, window, agency=agency)
    out.print(f"SLO {window} ({report.since[:16]} – {report.until[:16]} UTC)" + (f" · {agency}" if agency else ""))
    latency = Table("model", "service", "kind", "calls", f"p{settings.slo.latency_percentile:g} s", "target s",
                    "within", "error budget used", "", title="응답시간 Latency")
    for o in report.latency:
        latency.add_row(o.model, o.service, o.kind, str(o.calls), f"{o.measured_s:.2f}", f"{o.target_s:g}",
                        _pct(o.within_share, 1), _pct(o.budget_used, 0), _met(o.met))
    out.print(latency)
    available = Table("model", "probes", "by probe", "requests", "by request", "availability", "target",
                      "down min", "allowed min", "error budget used", "", title="가용성 Availability")
    for o in report.availability:
        available.add_row(o.model, str(o.probes), _pct(o.probe_availability, 3), str(o.requests),
                          _pct(o.request_availability, 3), _pct(o.measured, 3), _pct(o.target, 2),
                          "-" if o.down_minutes is None else f"{o.down_minutes:.1f}", f"{o.allowed_down_minutes:.1f}",
                          _pct(o.budget_used, 0), _met(o.met))
    out.print(available)
    c = report.capacity
    out.print(f"동시 사용자 Capacity: peak {c.peak_users} (5 min, at {c.peak_at or '-'}) / capacity "
              f"{c.capacity_users} · active users {c.active_users}  {_met(c.met)}")


def report(period: Annotated[str | None, typer.Option(help="Month, YYYY-MM (default: last month).")] = None,
           agency: Annotated[str | None, typer.Option(help="Agency code (default: every agency).")] = None,
           format: Annotated[str, typer.Option("--format", help="xlsx | hwpx | csv")] = "xlsx",
           output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write.")] = None) -> None:
    """The KPI report (guideline ch. 4): 투입/과정/산출/결과 indicators, as XLSX, HWPX or CSV."""
    from hanchang.ops import kpi

    if format not in kpi.WRITERS:
        raise typer.BadParameter("--format must be xlsx, hwpx or csv")
    settings = settings_or_exit()
    month = period or kpi.last_month(settings.budgets.timezone)
    try:
        built = kpi.build(open_database(settings), settings, month, agency)
    except HanchangError as exc:
        raise fail(exc.message) from None
    path = output or Path(f"hanchang-kpi-{agency or 'all'}-{month}.{format}")
    path.write_bytes(kpi.WRITERS[format][0](built))
    table = Table("구분", "지표", "값", "단위", title=built.title)
    for row in built.rows():
        table.add_row(*row[:4])
    out.print(table)
    out.print(f"written 저장: {path}")


@budget_app.command("show")
def budget_show(agency: Annotated[str | None, typer.Option(help="Agency code.")] = None) -> None:
    """This period's budgets and what each agency (and user with a budget) has used."""
    from hanchang.gateway.quotas import BudgetPlan, create_quota_store
    from hanchang.ops.budgets import overrides_loader, standing

    settings = settings_or_exit()
    db = open_database(settings)

    async def read():
        store = create_quota_store(settings.redis_url, settings.redis_prefix)
        try:
            return await standing(db, BudgetPlan(settings.budgets, overrides_loader(db)), store, None, agency)
        finally:
            await store.aclose()
    try:
        found = asyncio.run(read())
    except HanchangError as exc:
        raise fail(exc.message) from None
    if not settings.redis_url:
        out.print("[yellow]No HANCHANG_REDIS_URL: each server process counts its own budget use; the figures "
                  "below are this command's (empty). Set Redis to share and see them.[/yellow]")
    table = Table("scope", "requests", "tokens", "won", "override", title=f"예산 Budgets {found['period']} "
                  f"(resets {found['resets_at'][:16]})")
    def cell(row: dict, kind: str) -> str:
        limit, used = row["limits"][kind], row["used"][kind]
        return f"{used:,.0f} / {'무제한' if not limit else f'{limit:,.0f}'}"
    for row in found["data"]:
        table.add_row(row["label"], *(cell(row, kind) for kind in ("requests", "tokens", "won")),
                      "yes" if row["overridden"] else "")
    out.print(table)


@budget_app.command("set")
def budget_set(scope: Annotated[str, typer.Argument(help="agency:CODE or user:ID")],
               requests: Annotated[int | None, typer.Option(help="Requests per period (0 = unlimited).")] = None,
               tokens: Annotated[int | None, typer.Option(help="Tokens per period (0 = unlimited).")] = None,
               won: Annotated[float | None, typer.Option(help="Won per period (0 = unlimited).")] = None,
               until: Annotated[str | None, typer.Option(help="Last day of the override, YYYY-MM-DD.")] = None,
               note: Annotated[str, typer.Option(help="Why (kept in the audit trail).")] = "") -> None:
    """Override the configured budget of an agency or a user (audited)."""
    from hanchang.ops.budgets import set_override

    db = open_database(settings_or_exit())
    try:
        last = date.fromisoformat(until) if until else None
    except ValueError:
        raise typer.BadParameter("--until must be YYYY-MM-DD") from None
    try:
        with db.session() as session:
            detail = set_override(session, operator(), scope, requests=requests, tokens=tokens, won=won,
                                  until=last, note=note)
    except HanchangError as exc:
        raise fail(exc.message) from None
    out.print(f"budget override set 예산 조정: {detail} (servers apply it within a few seconds)")


@budget_app.command("clear")
def budget_clear(scope: Annotated[str, typer.Argument(help="agency:CODE or user:ID")]) -> None:
    """Remove an override: the configured budget applies again (audited)."""
    from hanchang.ops.budgets import clear_override

    db = open_database(settings_or_exit())
    try:
        with db.session() as session:
            clear_override(session, operator(), scope)
    except HanchangError as exc:
        raise fail(exc.message) from None
    out.print(f"budget override cleared 예산 조정 해제: {scope}")
