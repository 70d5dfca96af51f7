"""The ``issue-labeler`` console script: the labeler's commands (``labeler.cli``) plus the
bot's own (``serve``, ``export-corrections``). Lives in ``bot`` so that the dependency runs
one way: bot -> labeler, never back."""

from labeler.cli import app


def main() -> None:
    app()
