"""What every command module of the CLI shares (kept apart from :mod:`labeler.cli` so that
the modules adding commands to it, e.g. :mod:`labeler.cli_models`, never import it back)."""

from __future__ import annotations

import csv
import functools
from typing import Callable

import typer

from labeler.errors import LabelerError


def friendly(func: Callable) -> Callable:
    """Turn the errors users cause into one line on stderr and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (LabelerError, FileNotFoundError, PermissionError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except (ValueError, csv.Error, UnicodeError) as exc:  # bad input found deeper down: one line
            typer.echo(f"error: {(str(exc).strip().splitlines() or [type(exc).__name__])[0]}", err=True)
            raise typer.Exit(2) from None

    return wrapper
