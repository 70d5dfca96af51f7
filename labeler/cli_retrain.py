"""``issue-labeler retrain``: bring a repository's issues up to date (or read a local file),
train a candidate, compare it with the active model on the newest issues and promote it
only through the gate (:mod:`labeler.retrain` has the logic, :mod:`labeler.fetch` the
download, :mod:`labeler.registry` the versions).

Exit status: 0 promoted, 3 kept as staged (not promoted), 2 bad input (usage, a missing
file, a bad label map or option), 1 any other failure (GitHub unreachable, training failed).

The repository's label set: ``--label-map`` when given; else, for ``SOURCE`` = OWNER/REPO,
the function the caller put under :data:`REPO_LABEL_MAP` in the typer context object (the
``issue-labeler`` command, :mod:`bot.cli`, puts there one that reads the repository's labels
and ``.github/issue-labeler.yml``: labeler itself knows nothing of the bot's config); else
every label in the data.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from labeler.errors import DataError, FetchError, LabelerError

#: key of the typer context object (``ctx.obj``) holding ``f(repo, token, base_url) -> dict | None``:
#: the repository's label map as ``LabelMap.to_dict()`` data, None when it cannot tell
REPO_LABEL_MAP = "repo_label_map"
_DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".gz")


def _say(message: str) -> None:
    typer.echo(message, err=True)


def _source(source: str) -> tuple[Path | None, str | None]:
    """``(file, None)`` for a local file, ``(None, "OWNER/REPO")`` for a repository."""
    from labeler.registry import check_repo

    path = Path(source)
    if path.is_file():
        return path, None
    if path.suffix.lower() not in _DATA_SUFFIXES:
        try:
            return None, check_repo(source)
        except LabelerError:
            pass
    raise DataError(f"SOURCE {source!r} is neither a data file nor OWNER/REPO")


def retrain(ctx: typer.Context,
            source: Annotated[str, typer.Argument(help="OWNER/REPO (fetched incrementally) or a local JSONL/CSV file")],
            registry: Annotated[Path, typer.Option("--registry", help="model registry directory (created on the first run)")],
            repo: Annotated[Optional[str], typer.Option("--repo", help="OWNER/REPO in the registry (default: SOURCE when it is one; needed for a local file)")] = None,
            label_map: Annotated[Optional[Path], typer.Option("--label-map", "-m", help="YAML label map (default: the repository's labels and .github/issue-labeler.yml, else every label in the data)")] = None,
            strategy: Annotated[str, typer.Option("--strategy", "-s", help="strategy of the candidate")] = "auto",
            budget: Annotated[Optional[float], typer.Option(help="auto: seconds for fitting all candidates (default 600)")] = None,
            objective: Annotated[str, typer.Option(help="micro, macro, micro+macro or precision=P: what the decision rule is tuned for and the gate compares (precision=P: micro F1)")] = "micro",
            holdout: Annotated[str, typer.Option(help="held-out newest issues: a count (50) or a percentage (20%)")] = "20%",
            margin: Annotated[float, typer.Option(help="promote only when the candidate's objective is at least this much above the active model's (0: at least as good)")] = 0.0,
            max_precision_drop: Annotated[float, typer.Option(help="no gated label may lose more precision than this")] = 0.05,
            min_support: Annotated[int, typer.Option(help="labels with at least this many held-out issues are gated")] = 10,
            corrections: Annotated[Optional[list[Path]], typer.Option("--corrections", help="export-corrections JSONL (repeatable): a human's later labels win")] = None,
            report: Annotated[Optional[Path], typer.Option("--report", help="directory for the Markdown and JSON report (default: REGISTRY/OWNER/REPO/reports)")] = None,
            token: Annotated[Optional[str], typer.Option(envvar="GITHUB_TOKEN", help="GitHub token (default: $GITHUB_TOKEN)")] = None,
            base_url: Annotated[str, typer.Option(help="GitHub API URL (GitHub Enterprise: https://HOST/api/v3)")] = "https://api.github.com",
            data: Annotated[Optional[Path], typer.Option("--data", help="where fetched issues accumulate (default: REGISTRY/OWNER/REPO/data)")] = None):
    """Retrain on the newest data and promote the candidate only if it beats the active model
    on the newest issues (exit 0: promoted, 3: kept as staged, 2: bad input, 1: failure)."""
    try:
        code = _run(ctx, source, registry, repo, label_map, strategy, budget, objective, holdout, margin,
                    max_precision_drop, min_support, corrections or [], report, token, base_url, data)
    except FetchError as exc:  # GitHub, not the user: a failure
        _say(f"error: {exc}")
        code = 1
    except (LabelerError, FileNotFoundError, PermissionError) as exc:
        _say(f"error: {exc}")
        code = 2
    except Exception as exc:  # noqa: BLE001 - anything else is a failure, in one line
        _say(f"error: retrain failed: {type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}")
        code = 1
    raise typer.Exit(code)


def _run(ctx: typer.Context, source: str, registry: Path, repo: str | None, label_map: Path | None,
         strategy: str, budget: float | None, objective: str, holdout: str, margin: float,
         max_precision_drop: float, min_support: int, corrections: list[Path], report: Path | None,
         token: str | None, base_url: str, data: Path | None) -> int:
    from labeler.labelmap import LabelMap
    from labeler.registry import Registry, check_repo
    from labeler.retrain import RetrainSettings, append_job_summary, retrain as run_retrain

    # every option is checked before anything is fetched or trained
    settings = RetrainSettings.parse(strategy=strategy, budget=budget, objective=objective, holdout=holdout,
                                     margin=margin, max_precision_drop=max_precision_drop, min_support=min_support)
    path, from_repo = _source(source)
    if not (repo or from_repo):
        raise LabelerError("a local SOURCE needs --repo OWNER/REPO (the name in the registry)")
    name = check_repo(repo or from_repo)
    for f in corrections:
        if not f.is_file():
            raise DataError(f"corrections file not found: {f}")
    lm: Any = LabelMap.from_yaml(label_map) if label_map is not None else None
    reg = Registry(registry)
    seconds: dict[str, float] = {}
    fetched = None
    if from_repo is not None:
        from labeler.fetch import fetch_updates

        started = time.perf_counter()
        data_dir = data if data is not None else reg.root / name / "data"
        _say(f"fetching {from_repo} into {data_dir}")
        path, result = fetch_updates(from_repo, data_dir, token=token, base_url=base_url)
        seconds["fetch"] = time.perf_counter() - started
        fetched = dataclasses.asdict(result)
        _say(f"{result.read} issue(s) read ({result.new} new)"
             + (f", updated since {result.since}" if result.since else "") + f"; {result.total} in {path}")
        if lm is None:
            lm = _repo_label_map(ctx, from_repo, token, base_url)
    elif data is not None:
        raise LabelerError("--data is where a repository's issues are fetched to; with a local SOURCE, leave it out")
    if lm is None:
        _say("label set: every label in the data")
    outcome = run_retrain(path, registry=reg, repo=name, settings=settings, label_map=lm, corrections=corrections,
                          report_dir=report, source=source, fetched=fetched, seconds=seconds, progress=_say)
    summary = append_job_summary(outcome.markdown.read_text(encoding="utf-8"))
    typer.echo(f"{name}: version {outcome.version.number} "
               + ("promoted" if outcome.promoted else "kept as staged (not promoted)")
               + f"; report {outcome.markdown}" + (f" (and {summary})" if summary else ""))
    return outcome.exit_code


def _repo_label_map(ctx: typer.Context, repo: str, token: str | None, base_url: str):
    """The repository's label map from the context's :data:`REPO_LABEL_MAP` function, or None."""
    from labeler.labelmap import LabelMap

    reader: Callable[[str, str | None, str], dict | None] | None = (ctx.obj or {}).get(REPO_LABEL_MAP) \
        if isinstance(ctx.obj, dict) else None
    if reader is None:
        return None
    found = reader(repo, token, base_url)
    if not found or not found.get("labels"):
        return None
    lm = LabelMap.from_dict(found)
    _say(f"label set from {repo}: {', '.join(lm.labels)}")
    return lm
