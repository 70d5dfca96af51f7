"""The labeler's command line (typer): split, train, evaluate, predict, fetch, strategies.

The ``issue-labeler`` console script (``bot.cli:main``) adds the bot's commands to this app.
Bad input gets one clear line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import csv
import functools
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from labeler.data import LoadOptions, issue_from_object, issue_text
from labeler.errors import DataError, LabelerError

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  help="issue-labeler: label GitHub issues (train, evaluate, predict, split, fetch).")

# -- options shared by the commands that read data ------------------------------------------
LabelMapOpt = Annotated[Optional[Path], typer.Option("--label-map", "-m", help="YAML label map (raw label -> label to predict); default: every label as it is")]
FormatOpt = Annotated[Optional[str], typer.Option("--format", help="jsonl or csv (default: from the file name)")]
TextColOpt = Annotated[Optional[str], typer.Option("--text-column", help="one column/field holding the whole text")]
TitleColOpt = Annotated[str, typer.Option("--title-column", help="title column/field")]
BodyColOpt = Annotated[str, typer.Option("--body-column", help="body column/field")]
LabelColOpt = Annotated[str, typer.Option("--label-column", help="label column/field (one name or a , or ; separated list)")]
PrOpt = Annotated[bool, typer.Option("--include-prs/--exclude-prs", help="keep pull requests")]


def _opts(fmt, text_column, title_column, body_column, label_column, include_prs) -> LoadOptions:
    return LoadOptions(format=fmt, text_column=text_column, title_column=title_column,
                       body_column=body_column, label_column=label_column, include_pull_requests=include_prs)


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


def _resolve_split_dir(data: Path, valid: Path | None) -> tuple[Path, Path | None, Path | None]:
    """A directory written by ``split`` stands for its train.jsonl (+ valid, unlabelled)."""
    if data.is_dir():
        train = data / "train.jsonl"
        if not train.is_file():
            raise DataError(f"{data} is a directory without train.jsonl (write one with `issue-labeler split`)")
        unlabelled = data / "unlabelled.jsonl"
        return train, valid or (data / "valid.jsonl" if (data / "valid.jsonl").is_file() else None), \
            unlabelled if unlabelled.is_file() else None
    return data, valid, None


@app.command()
@friendly
def split(data: Path, label_map: LabelMapOpt = None,
          seed: Annotated[int, typer.Option(help="seed of the split and its slices")] = 0,
          output: Annotated[Path, typer.Option("--output", "-o", help="directory to write")] = Path("split"),
          fmt: FormatOpt = None, text_column: TextColOpt = None, title_column: TitleColOpt = "title",
          body_column: BodyColOpt = "body", label_column: LabelColOpt = "labels", include_prs: PrOpt = True):
    """Split labelled issues into train/valid/test (iterative stratification) and write them,
    the unlabelled pool and split.json (sizes, label counts, nested training slices)."""
    from labeler.pipeline import prepare, write_split

    prepared = prepare(data, label_map, _opts(fmt, text_column, title_column, body_column, label_column, include_prs))
    summary = write_split(prepared, output, seed=seed)
    typer.echo(f"{prepared.load.summary()}; {len(prepared.labelled)} labelled, {len(prepared.unlabelled)} unlabelled")
    typer.echo("sizes: " + ", ".join(f"{k} {v}" for k, v in summary["sizes"].items()))
    typer.echo("training slices (target: actual): " + ", ".join(f"{k}: {v}" for k, v in summary["slice_sizes"].items()))
    typer.echo(f"wrote {output}/train.jsonl, valid.jsonl, test.jsonl, unlabelled.jsonl, split.json")


@app.command()
@friendly
def train(data: Annotated[Path, typer.Argument(help="training issues (a file, or a directory written by split)")],
          label_map: LabelMapOpt = None,
          strategy: Annotated[str, typer.Option("--strategy", "-s", help="auto (default: tries the others within --budget), linear, naive_bayes, knn, zero_shot, finetune, setfit")] = "auto",
          valid: Annotated[Optional[Path], typer.Option(help="validation issues: tunes the decision rule and hyper-parameters")] = None,
          output: Annotated[Path, typer.Option("--output", "-o", help="bundle directory to write")] = Path("bundle"),
          param: Annotated[Optional[list[str]], typer.Option("--param", "-p", help="strategy parameter KEY=VALUE (JSON values), repeatable")] = None,
          decision: Annotated[str, typer.Option(help="decision rule: auto, top_k, threshold or per_label")] = "auto",
          objective: Annotated[str, typer.Option(help="what the decision rule is tuned for: micro, macro or precision=P (labels that cannot reach P on validation are only suggested)")] = "micro",
          budget: Annotated[Optional[float], typer.Option(help="auto: seconds for fitting all candidates (default 600)")] = None,
          exclusive: Annotated[str, typer.Option(help="auto: the label map's exclusive groups, or all labels when every issue has exactly one; none: no groups")] = "auto",
          use_unlabelled: Annotated[bool, typer.Option(help="give the unlabelled pool to strategies that use it")] = False,
          fmt: FormatOpt = None, text_column: TextColOpt = None, title_column: TitleColOpt = "title",
          body_column: BodyColOpt = "body", label_column: LabelColOpt = "labels", include_prs: PrOpt = True):
    """Train a strategy and save a model bundle (tuned on --valid when given)."""
    from labeler.bundle import Bundle
    from labeler.decision import check_decision, check_objective
    from labeler.pipeline import prepare
    from labeler.strategies import get_strategy
    from labeler.strategies.base import parse_params

    # every option is checked before any data is read or anything is trained
    try:
        strategy_cls = get_strategy(strategy)
    except KeyError as exc:
        raise LabelerError(exc.args[0]) from None
    check_decision(decision)
    goal = check_objective(objective)
    raw = parse_params(param)
    if budget is not None:
        if strategy != "auto":
            raise LabelerError("--budget is for --strategy auto (other strategies take -p max_seconds=... where they have one)")
        raw["budget"] = budget
    if strategy == "auto":
        raw.setdefault("objective", str(goal))  # candidates are ranked for what the rule is tuned for
    params = strategy_cls.check_params(raw)
    opts = _opts(fmt, text_column, title_column, body_column, label_column, include_prs)
    data, valid, unlabelled_path = _resolve_split_dir(data, valid)
    prepared = prepare(data, label_map, opts)
    groups, why = prepared.label_map.exclusive_groups(prepared.label_sets(), exclusive)
    if why:
        typer.echo(why, err=True)
    valid_pair = None
    if valid is not None:
        pv = prepare(valid, prepared.label_map, opts)
        valid_pair = (pv.texts(), pv.label_sets())
    unlabelled = None
    if use_unlabelled:
        unlabelled = [i.text for i in prepared.unlabelled]
        if unlabelled_path is not None:
            from labeler.data import load_issues

            unlabelled += [i.text for i in load_issues(unlabelled_path, opts).issues]
    typer.echo(f"training {strategy} on {len(prepared.labelled)} issues, {len(prepared.labels)} labels"
               + (f", validating on {len(valid_pair[0])}" if valid_pair else "")
               + (f", budget {params.get('budget', 600):.0f}s" if strategy == "auto" else ""), err=True)
    model = strategy_cls(prepared.labels, prepared.label_map.descriptions, **params)
    bundle = Bundle.train(model, prepared.texts(), prepared.label_sets(), valid=valid_pair,
                          unlabelled=unlabelled, decision=decision, objective=goal, exclusive=groups,
                          metadata=prepared.metadata())
    bundle.save(output)
    line = f"saved {output} ({bundle.decision.describe()}, trained in {bundle.manifest['training']['seconds']:.1f}s)"
    if "validation" in bundle.manifest:
        v = bundle.manifest["validation"]
        line += f"; validation micro F1 {v['micro_f1']:.3f}, macro F1 {v['macro_f1']:.3f}"
    if bundle.strategy.name == "auto":
        info = bundle.strategy.fitted_info
        line += f"\nauto chose {info['chosen']}: {info['why']}"
    if bundle.decision.suggest_only:
        line += f"\nsuggest-only (cannot reach {goal} on validation): {', '.join(bundle.decision.suggest_only)}"
    typer.echo(line)


@app.command()
@friendly
def evaluate(bundle: Path, data: Path, as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
             label_map: LabelMapOpt = None, fmt: FormatOpt = None, text_column: TextColOpt = None,
             title_column: TitleColOpt = "title", body_column: BodyColOpt = "body",
             label_column: LabelColOpt = "labels", include_prs: PrOpt = True):
    """Score a bundle on labelled issues: micro, macro and per-label F1."""
    from labeler.bundle import Bundle
    from labeler.labelmap import LabelMap
    from labeler.pipeline import prepare

    model = Bundle.load(bundle)
    lm = label_map if label_map is not None else LabelMap({l: l for l in model.labels})
    prepared = prepare(data, lm, _opts(fmt, text_column, title_column, body_column, label_column, include_prs))
    result = model.evaluate(prepared.texts(), prepared.label_sets())
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(f"{result['n']} issues: micro F1 {result['micro_f1']:.3f}, macro F1 {result['macro_f1']:.3f} "
               f"({result['ms_per_issue']:.2f} ms/issue)")
    width = max(len(l) for l in model.labels)
    typer.echo(f"{'label':<{width}}  precision  recall     f1  support")
    for label, m in result["per_label"].items():
        typer.echo(f"{label:<{width}}  {m['precision']:9.3f}  {m['recall']:6.3f}  {m['f1']:5.3f}  {m['support']:7d}")


@app.command()
@friendly
def predict(bundle: Path, title: Annotated[Optional[str], typer.Option(help="issue title")] = None,
            body: Annotated[str, typer.Option(help="issue body")] = "",
            explain: Annotated[bool, typer.Option(help="also print the strategy's explanation")] = False,
            as_json: Annotated[bool, typer.Option("--json", help="print JSON lines")] = False):
    """Labels with scores for one issue (--title/--body) or for JSON issues on stdin, one per line."""
    from labeler.bundle import Bundle

    model = Bundle.load(bundle)
    if title is not None:
        items = [(None, issue_text(title, body))]
    else:
        if sys.stdin.isatty():
            raise LabelerError("give --title (and --body), or JSON issues on stdin, one per line")
        items = []
        for lineno, line in enumerate(sys.stdin, 1):
            if not line.strip():
                continue
            try:
                issue = issue_from_object(json.loads(line))
            except (json.JSONDecodeError, ValueError) as exc:
                raise DataError(f"stdin, line {lineno}: not a JSON issue object ({exc})") from None
            items.append((issue.number, issue.text))
    results = model.predict([text for _, text in items])
    for (number, text), preds in zip(items, results):
        record: dict[str, Any] = {"labels": [{"label": p.label, "score": round(p.score, 4)} for p in preds]}
        if number is not None:
            record = {"number": number, **record}
        if explain:
            record["explain"] = model.explain(text).to_dict()
        if as_json:
            typer.echo(json.dumps(record, default=str))
        else:
            head = f"#{number}: " if number is not None else ""
            typer.echo(head + (", ".join(f"{p.label} ({p.score:.2f})" for p in preds) or "(no label)"))
            if explain:
                typer.echo(json.dumps(record["explain"], indent=2, default=str))


@app.command()
@friendly
def fetch(repo: Annotated[str, typer.Argument(help="OWNER/REPO")],
          output: Annotated[Path, typer.Option("--output", "-o", help="JSONL file to write (appended to on resume)")] = Path("issues.jsonl"),
          token: Annotated[Optional[str], typer.Option(envvar="GITHUB_TOKEN", help="GitHub token (default: $GITHUB_TOKEN)")] = None,
          state: Annotated[str, typer.Option(help="all, open or closed")] = "all",
          per_page: Annotated[int, typer.Option(help="issues per API page (at most 100)")] = 100,
          base_url: Annotated[str, typer.Option(help="GitHub API URL (GitHub Enterprise: https://HOST/api/v3)")] = "https://api.github.com"):
    """Download all issues and pull requests of a repository as REST JSON lines (resumable)."""
    from labeler.fetch import fetch_issues

    n = fetch_issues(repo, output, token=token, state=state, per_page=per_page, base_url=base_url)
    typer.echo(f"{output}: {n} issues")


@app.command()
@friendly
def strategies(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="also list each strategy's parameters (type, default, meaning)")] = False):
    """List the strategies the registry knows (with --verbose: their -p parameters)."""
    from labeler.strategies import available, get_strategy
    from labeler.strategies.base import describe_params

    for name in available():
        if not verbose:
            typer.echo(name)
            continue
        cls = get_strategy(name)
        summary = (cls.__doc__ or "").strip().split("\n\n", 1)[0].replace("\n", " ")
        typer.echo(f"{name}: {summary}" if summary else name)
        rows = [(p.name, p.type, json.dumps(p.default), p.description) for p in describe_params(cls)]
        if not rows:
            typer.echo("  (no parameters)")
        widths = [max((len(r[i]) for r in rows), default=0) for i in range(3)]
        for row in rows:
            typer.echo("  " + "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + "  " + row[3])
        typer.echo("")


@app.command()
@friendly
def demo(strategy: Annotated[str, typer.Option("--strategy", "-s")] = "naive_bayes",
         output: Annotated[Path, typer.Option("--output", "-o")] = Path("runs/demo")):
    """Split, train and evaluate on the small example dataset shipped with issue-labeler."""
    from labeler.bundle import Bundle
    from labeler.pipeline import prepare, write_split

    examples = Path(__file__).parent / "examples"
    prepared = prepare(examples / "issues.jsonl", examples / "labels.yml")
    summary = write_split(prepared, output / "split", seed=0)
    typer.echo(f"example data: {prepared.load.summary()}; split sizes {summary['sizes']}")
    train_p = prepare(output / "split" / "train.jsonl", prepared.label_map)
    valid_p = prepare(output / "split" / "valid.jsonl", prepared.label_map)
    test_p = prepare(output / "split" / "test.jsonl", prepared.label_map)
    started = time.perf_counter()
    bundle = Bundle.train(strategy, train_p.texts(), train_p.label_sets(), labels=prepared.labels,
                          descriptions=prepared.label_map.descriptions,
                          valid=(valid_p.texts(), valid_p.label_sets()))
    bundle.save(output / "bundle")
    result = bundle.evaluate(test_p.texts(), test_p.label_sets())
    typer.echo(f"{strategy}: trained in {time.perf_counter() - started:.1f}s, decision {bundle.decision.describe()}; "
               f"test micro F1 {result['micro_f1']:.3f}, macro F1 {result['macro_f1']:.3f} on {result['n']} issues")
    typer.echo(f"bundle saved to {output / 'bundle'}; try: issue-labeler predict {output / 'bundle'} "
               f"--title 'Crash on startup' --body 'Traceback ...'")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
