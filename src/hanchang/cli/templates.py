"""`hanchang templates …`: the drafting templates an agency manages (sections, instructions, example)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.table import Table

from hanchang.assist import templates
from hanchang.cli.common import audit_admin, fail, open_database, out, settings_or_exit
from hanchang.core.errors import HanchangError
from hanchang.store import accounts

templates_app = typer.Typer(help="Drafting templates (문서 작성 서식).", no_args_is_help=True)
AgencyOption = Annotated[str, typer.Option("--agency", help="Agency code.")]
EXAMPLE = """key: weekly_report
name_ko: 주간 업무보고
sections: [금주 실적, 차주 계획, 건의 사항]
instructions: 각 항목은 ○ 개조식으로 세 줄 이내로 쓰세요.
example: |
  ○ 금주 실적: 공통기반 점검 완료"""


@templates_app.command("list")
def templates_list(agency: AgencyOption) -> None:
    """Templates an agency's users can draft with: built-in ones and the agency's own."""
    db = open_database(settings_or_exit())
    table = Table("key", "name 이름", "source 출처", "sections 절")
    try:
        with db.session() as session:
            found = templates.for_agency(session, accounts.get_agency(session, agency).id)
    except accounts.AccountError as exc:
        raise fail(str(exc)) from None
    for template in found.values():
        table.add_row(template.id, template.name_ko, "기관" if template.source == "agency" else "기본",
                      " · ".join(template.sections))
    out.print(table)


@templates_app.command("set")
def templates_set(agency: AgencyOption,
                  file: Annotated[Path, typer.Option("--file", help="YAML file with key, name_ko, sections, "
                                                     "instructions and optionally example.")]) -> None:
    """Create or replace an agency template from a YAML file (a built-in key replaces it for the agency)."""
    try:
        spec = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise fail(f"cannot read {file}: {exc}") from None
    missing = [k for k in ("key", "name_ko", "sections", "instructions") if not isinstance(spec, dict) or k not in spec]
    if missing:
        raise fail(f"{file} lacks {', '.join(missing)}. A template file looks like:\n{EXAMPLE}")
    if not isinstance(spec["sections"], list):
        raise fail(f"{file}: 'sections' must be a list of section titles")
    db = open_database(settings_or_exit())
    try:
        with db.session() as session:
            agency_id = accounts.get_agency(session, agency).id
            template, created = templates.store(session, agency_id, str(spec["key"]), str(spec["name_ko"]),
                                                [str(s) for s in spec["sections"]], str(spec["instructions"]),
                                                str(spec.get("example") or ""))
            audit_admin(session, "templates.save", agency, template=template.id, created=created)
    except (accounts.AccountError, HanchangError) as exc:
        raise fail(str(exc)) from None
    out.print(f"{'created' if created else 'replaced'} template {template.id} ({template.name_ko}) for {agency}")


@templates_app.command("delete")
def templates_delete(key: str, agency: AgencyOption) -> None:
    """Delete an agency template (a replaced built-in comes back)."""
    db = open_database(settings_or_exit())
    try:
        with db.session() as session:
            templates.remove(session, accounts.get_agency(session, agency).id, key)
            audit_admin(session, "templates.delete", agency, template=key)
    except (accounts.AccountError, HanchangError) as exc:
        raise fail(str(exc)) from None
    out.print(f"deleted template {key} of {agency}")
