"""`hanchang`: the operator's command line (Typer). `main` is the root; a module per command group."""

from hanchang.cli.main import app

__all__ = ["app"]
