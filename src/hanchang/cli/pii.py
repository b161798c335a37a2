"""`hanchang pii …`: find and mask Korean personal data in text (개인정보)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from hanchang.cli.common import fail

pii_app = typer.Typer(help="Korean personal data (개인정보): scan and mask.", no_args_is_help=True)


@pii_app.command("scan")
def pii_scan(
    jsonl: Annotated[Path, typer.Option("--jsonl", help="Lines of {\"text\": …}; - for stdin.")],
) -> None:
    """Print one JSON line per input: {"text", "findings": [{"type", "start", "end", "value"}]}."""
    from hanchang.guard.pii import scan

    handle = sys.stdin if str(jsonl) == "-" else None
    if handle is None and not jsonl.is_file():
        raise fail(f"{jsonl}: file not found")
    with handle or jsonl.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                text = json.loads(line)["text"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise fail(f"{jsonl}:{number}: expected a JSON object with a \"text\" field") from None
            findings = [f.as_dict() for f in scan(str(text))]
            for finding in findings:
                finding.pop("score")
            print(json.dumps({"text": text, "findings": findings}, ensure_ascii=False))


@pii_app.command("mask")
def pii_mask() -> None:
    """Read text on stdin, write it with personal data replaced by typed placeholders."""
    from hanchang.guard.pii import scan
    from hanchang.guard.vault import PseudonymVault

    vault = PseudonymVault()  # one numbering for the whole input: same value, same placeholder
    for line in sys.stdin:
        sys.stdout.write(vault.replace(line, scan(line)))


# -- audit -----------------------------------------------------------------------------------
