"""`hanchang assets …`: shared AI assets as files (`hanchang.asset/v1`), for an agency's GitLab.

Both commands act as a named user of the agency (with that user's rights), as the window would.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from hanchang.assist import asset_documents, asset_library
from hanchang.cli.common import acting_user, fail, open_database, out, settings_or_exit
from hanchang.core.errors import HanchangError
from hanchang.store import accounts

assets_app = typer.Typer(help="Shared AI assets as files (공유 자산 내보내기·가져오기).", no_args_is_help=True)
AgencyOption = Annotated[str, typer.Option("--agency", help="Agency code.")]
UserOption = Annotated[str, typer.Option("--user", help="Acts as this user of the agency (their rights).")]


@assets_app.command("export")
def assets_export(agency: AgencyOption, user: UserOption,
                  kind: Annotated[str, typer.Option("--kind", help="agent | prompt | template | service | connector")],
                  ref: Annotated[str, typer.Option("--ref", help="Agent number, prompt id, template key, "
                                                   "custom service id or connector name.")],
                  fmt: Annotated[str, typer.Option("--format", help="yaml or json")] = "yaml",
                  output: Annotated[Path | None, typer.Option("-o", "--output", help="File (default: stdout).")] = None,
                  ) -> None:
    """Write one of the agency's assets as a portable file."""
    settings = settings_or_exit()
    db = open_database(settings)
    try:
        with db.session() as session:
            doc, _ = asset_documents.document(session, acting_user(session, agency, user), kind, ref,
                                              settings.services.custom)
            text = asset_documents.dump(doc, fmt)
    except (accounts.AccountError, HanchangError) as exc:
        raise fail(getattr(exc, "message", str(exc))) from None
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        out.print(f"written {output}")


@assets_app.command("import")
def assets_import(file: Annotated[Path, typer.Argument(help="A hanchang.asset/v1 YAML or JSON file.")],
                  agency: AgencyOption, user: UserOption) -> None:
    """Make what a file describes in the agency (audited; collections it cannot read are left out)."""
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc}") from None
    settings = settings_or_exit()
    db = open_database(settings)
    try:
        with db.session() as session:
            made = asset_library.import_document(session, acting_user(session, agency, user), raw,
                                                 settings.connectors.policy())
    except (accounts.AccountError, HanchangError) as exc:
        raise fail(getattr(exc, "message", str(exc))) from None
    out.print(f"imported {made['kind']} '{made['name']}' as {made['ref']}")
    if made["collections_skipped"]:
        out.print(f"not readable here, left out: {', '.join(made['collections_skipped'])}")
