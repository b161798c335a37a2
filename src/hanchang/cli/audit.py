"""`hanchang audit …`: verify, checkpoint and export the hash-chained audit trail (감사 기록)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from hanchang.cli.common import err, open_database, out, parse_since, settings_or_exit

audit_app = typer.Typer(help="The hash-chained audit trail (감사 기록).", no_args_is_help=True)


def _trail_and_book():
    """The database holding the trail, and the signed checkpoints kept under HANCHANG_HOME."""
    from hanchang.audit.checkpoints import CheckpointBook

    settings = settings_or_exit()
    return open_database(settings), CheckpointBook(settings.home)


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the whole hash chain; exit 1 naming the first broken record."""
    from hanchang.audit import trail

    db, book = _trail_and_book()
    with db.session() as session:
        result = trail.verify(session)
        cut = book.check(session)
    if not result.ok:
        err.print(f"[red]audit trail broken[/red] at record {result.broken_id}: {result.problem} "
                  f"({result.checked} records before it verified)")
        raise typer.Exit(1)
    if cut:
        err.print(f"[red]audit trail broken[/red]: {cut} (the chain itself verifies: {result.checked} records)")
        raise typer.Exit(1)
    signed = book.latest()
    out.print(f"[green]audit trail intact[/green]: {result.checked} records verified"
              + (f"; matches {len(book.read())} signed checkpoints (latest: record {signed.last_id}, "
                 f"{signed.at})" if signed else "; no signed checkpoint yet (hanchang audit checkpoint)"))


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign the chain's current head into HANCHANG_HOME/audit/checkpoints.jsonl (keep a copy elsewhere)."""
    db, book = _trail_and_book()
    with db.session() as session:
        written = book.write(session)
    if written is None:
        out.print("No new records since the last checkpoint; nothing to sign.")
        return
    out.print(f"Signed checkpoint: record {written.last_id} ({written.last_hash[:16]}…) at {written.at} → "
              f"{book.file} (public key: {book.public_path})", highlight=False)


@audit_app.command("export")
def audit_export(
    since: Annotated[str, typer.Option(help="7d, 12h, 30m or an ISO date.")] = "30d",
    agency: Annotated[str | None, typer.Option(help="Only this agency's records.")] = None,
    format: Annotated[str, typer.Option("--format", help="jsonl | csv")] = "jsonl",
    output: Annotated[Path | None, typer.Option("--out", help="File to write (default stdout).")] = None,
) -> None:
    """Write audit records (for the auditor role) as JSONL or CSV."""
    from hanchang.audit import trail

    if format not in ("jsonl", "csv"):
        raise typer.BadParameter("--format must be jsonl or csv")
    start = parse_since(since)
    db = open_database(settings_or_exit())
    writer = trail.to_jsonl if format == "jsonl" else trail.to_csv
    with db.session() as session:
        rows = trail.export_rows(session, start, agency)
        target = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
        try:
            for piece in writer(rows):
                target.write(piece)
        finally:
            if output:
                target.close()
    if output:
        err.print(f"written {output}")


@audit_app.command("new-key")
def audit_new_key() -> None:
    """Print a new key for encrypting stored prompts (set it as HANCHANG_AUDIT_KEY)."""
    from cryptography.fernet import Fernet

    print(Fernet.generate_key().decode())
