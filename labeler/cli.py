"""The labeler's command line (typer): split, train, adapt, evaluate, predict, fetch, strategies, models,
retrain, augment-setup.

The ``issue-labeler`` console script (``bot.cli:main``) adds the bot's commands to this app.
Bad input gets one clear line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from labeler.data import LoadOptions, issue_text
from labeler.cli_common import friendly
from labeler.errors import DataError, LabelerError

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  help="issue-labeler: label GitHub issues (train, evaluate, predict, split, fetch, adapt).")

# -- options shared by the commands that read data ------------------------------------------
# Column options default to None ("not given"), so a command can tell a flag from a value it
# remembers: train takes them from a split directory's split.json, evaluate and predict from
# the bundle's manifest, and a flag given on the command line always wins.
LabelMapOpt = Annotated[Optional[Path], typer.Option("--label-map", "-m", help="YAML label map (raw label -> label to predict); default: every label as it is (evaluate: the bundle's)")]
FormatOpt = Annotated[Optional[str], typer.Option("--format", help="jsonl or csv (default: from the file name)")]
TextColOpt = Annotated[Optional[str], typer.Option("--text-column", help="one column/field holding the whole text")]
TitleColOpt = Annotated[Optional[str], typer.Option("--title-column", help="title column/field (default: title)")]
BodyColOpt = Annotated[Optional[str], typer.Option("--body-column", help="body column/field (default: body)")]
LabelColOpt = Annotated[Optional[str], typer.Option("--label-column", help="label column/field, one name or a , or ; separated list (default: labels)")]
PrOpt = Annotated[Optional[bool], typer.Option("--include-prs/--exclude-prs", help="keep pull requests (default: keep)", show_default=False)]

_FLAG_NAMES = {"format": "--format", "text_column": "--text-column", "title_column": "--title-column",
               "body_column": "--body-column", "label_column": "--label-column"}


def _flags(fmt, text_column, title_column, body_column, label_column, include_prs) -> dict[str, Any]:
    """The data flags given on the command line (None = not given)."""
    given = {"format": fmt, "text_column": text_column, "title_column": title_column,
             "body_column": body_column, "label_column": label_column, "include_pull_requests": include_prs}
    return {k: v for k, v in given.items() if v is not None}


def _describe(options: dict[str, Any]) -> str:
    parts = []
    for key, value in options.items():
        if key == "include_pull_requests":
            parts.append("--include-prs" if value else "--exclude-prs")
        else:
            parts.append(f"{_FLAG_NAMES[key]} {value}")
    return " ".join(parts)


def _options(flags: dict[str, Any], recorded: dict[str, Any] | None = None, source: str = "",
             path: Path | None = None) -> LoadOptions:
    """LoadOptions from the flags given, then what ``source`` recorded (said on stderr when it
    changes anything), then the defaults. A recorded format applies only where the file name
    does not tell (stdin, or a name without .csv/.jsonl/.json)."""
    recorded = {k: v for k, v in (recorded or {}).items() if k in LoadOptions.RECORDED and v is not None}
    if path is not None and (str(path) == "-"  # stdin is sniffed: a first '{' means JSONL
                             or any(s.lower() in (".csv", ".jsonl", ".json") for s in Path(path).suffixes)):
        recorded.pop("format", None)
    defaults = LoadOptions()
    used = {k: v for k, v in recorded.items() if k not in flags and v != getattr(defaults, k)}
    if used and source:
        typer.echo(f"using {source}'s input options: {_describe(used)} (flags override)", err=True)
    return LoadOptions(**{**recorded, **flags})


def _resolve_split_dir(data: Path, valid: Path | None) -> tuple[Path, Path | None, Path | None, dict]:
    """A directory written by ``split`` stands for its train file (+ valid, unlabelled) and
    brings its split.json (how the files are read, the label map)."""
    if not data.is_dir():
        return data, valid, None, {}
    info: dict = {}
    if (data / "split.json").is_file():
        try:
            info = json.loads((data / "split.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"{data}/split.json is not valid JSON ({exc})") from None
    files = info.get("files") or {}

    def find(name: str) -> Path | None:
        for candidate in ([files[name]] if name in files else []) + [f"{name}.jsonl", f"{name}.csv"]:
            if (data / candidate).is_file():
                return data / candidate
        return None

    train = find("train")
    if train is None:
        raise DataError(f"{data} is a directory without a train file (write one with `issue-labeler split`)")
    return train, valid or find("valid"), find("unlabelled"), info


def _size(text: str | None, name: str, default: float) -> float | int:
    """--valid/--test: a fraction (0.2) or a count (100)."""
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise LabelerError(f"--{name} takes a fraction (e.g. 0.2) or a count (e.g. 100), not {text!r}") from None
    if value < 0 or (value >= 1 and value != int(value)):
        raise LabelerError(f"--{name} takes a fraction below 1 or a whole count, not {text!r}")
    return int(value) if value >= 1 else value


@app.command()
@friendly
def split(data: Path, label_map: LabelMapOpt = None,
          seed: Annotated[int, typer.Option(help="seed of the split and its slices")] = 0,
          output: Annotated[Path, typer.Option("--output", "-o", help="directory to write")] = Path("split"),
          where: Annotated[Optional[list[str]], typer.Option("--where", help="keep only rows whose COLUMN (a CSV column or a top-level JSONL field) equals VALUE (COLUMN=VALUE, repeatable: one column given several times keeps any of its values, different columns must all match)")] = None,
          valid: Annotated[Optional[str], typer.Option("--valid", help="validation size: a fraction (0.25) or a count (100)")] = None,
          test: Annotated[Optional[str], typer.Option("--test", help="test size: a fraction (0.25) or a count (100); ignored with --test-from")] = None,
          test_from: Annotated[Optional[Path], typer.Option("--test-from", help="use this file as the test set (same options and --where) and split only the rest into train and valid")] = None,
          fmt: FormatOpt = None, text_column: TextColOpt = None, title_column: TitleColOpt = None,
          body_column: BodyColOpt = None, label_column: LabelColOpt = None, include_prs: PrOpt = None):
    """Split labelled issues into train/valid/test (iterative stratification) and write them,
    the unlabelled pool and split.json (sizes, label counts, nested training slices, how the
    files are read). The files keep every input column unchanged, in the input's format."""
    from dataclasses import replace

    from labeler.data import parse_where
    from labeler.pipeline import prepare, write_split

    valid_size = _size(valid, "valid", 0.25)
    test_size = _size(test, "test", 0.25)
    opts = replace(_options(_flags(fmt, text_column, title_column, body_column, label_column, include_prs)),
                   where=parse_where(where))
    prepared = prepare(data, label_map, opts, require_every_label=True)
    test_set = None
    if test_from is not None:
        test_opts = replace(opts, format=fmt)  # the test file's own name tells its format
        test_set = prepare(test_from, prepared.label_map, test_opts)
    try:
        summary = write_split(prepared, output, seed=seed, valid=valid_size, test=test_size,
                              test_set=test_set, options=opts)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    typer.echo(f"{prepared.load.summary()}; {len(prepared.labelled)} labelled, {len(prepared.unlabelled)} unlabelled")
    if test_set is not None:
        typer.echo(f"test set from {test_from}: {test_set.load.summary()}, {len(test_set.labelled)} labelled"
                   + (f"; {summary['dropped_as_in_test_set']} issue(s) of {data} left out as they are in the test set"
                      if summary["dropped_as_in_test_set"] else ""))
    typer.echo("sizes: " + ", ".join(f"{k} {v}" for k, v in summary["sizes"].items()))
    typer.echo("training slices (target: actual): " + ", ".join(f"{k}: {v}" for k, v in summary["slice_sizes"].items()))
    typer.echo(f"wrote {output}/" + ", ".join(summary["files"].values()) + ", split.json")


@app.command()
@friendly
def train(data: Annotated[Path, typer.Argument(help="training issues (a file, or a directory written by split)")],
          label_map: LabelMapOpt = None,
          strategy: Annotated[str, typer.Option("--strategy", "-s", help="auto (default: tries the others within --budget; finetune only where CUDA is, unless -p transformers=true), linear, naive_bayes, knn, zero_shot, finetune, setfit")] = "auto",
          valid: Annotated[Optional[Path], typer.Option(help="validation issues: tunes the decision rule and hyper-parameters")] = None,
          output: Annotated[Path, typer.Option("--output", "-o", help="bundle directory to write")] = Path("bundle"),
          param: Annotated[Optional[list[str]], typer.Option("--param", "-p", help="strategy parameter KEY=VALUE (JSON values), repeatable")] = None,
          decision: Annotated[str, typer.Option(help="decision rule: auto, top_k, threshold or per_label")] = "auto",
          objective: Annotated[str, typer.Option(help="what the decision rule is tuned for: micro, macro, micro+macro (their mean) or precision=P (labels that cannot reach P on validation are only suggested)")] = "micro+macro",
          budget: Annotated[Optional[float], typer.Option(help="auto: seconds for fitting all candidates (default 600)")] = None,
          exclusive: Annotated[str, typer.Option(help="auto: the label map's exclusive groups, or all labels when every issue has exactly one; none: no groups")] = "auto",
          use_unlabelled: Annotated[bool, typer.Option(help="give the unlabelled pool to strategies that use it")] = False,
          augment: Annotated[Optional[str], typer.Option("--augment", help="add altered copies of the training issues (never of --valid): synonym (WordNet; run `issue-labeler augment-setup` once) or contextual (a masked LM, --augment-model)")] = None,
          augment_copies: Annotated[Optional[int], typer.Option("--augment-copies", min=1, help="--augment: copies per training issue (default 1)")] = None,
          augment_seed: Annotated[Optional[int], typer.Option("--augment-seed", help="--augment: seed of the copies (default 0)")] = None,
          augment_model: Annotated[Optional[Path], typer.Option("--augment-model", help="--augment contextual: directory of a BERT masked LM with its MLM head (e.g. from `issue-labeler adapt`)")] = None,
          fmt: FormatOpt = None, text_column: TextColOpt = None, title_column: TitleColOpt = None,
          body_column: BodyColOpt = None, label_column: LabelColOpt = None, include_prs: PrOpt = None):
    """Train a strategy and save a model bundle (tuned on --valid when given). The bundle
    records how its data was read (format, columns) and its label map, so evaluate and
    predict need neither again. With --augment the training issues (only they: a split
    directory's train file, never its valid file) get seeded altered copies; code blocks,
    stack traces, inline code, URLs and @mentions are kept as they are."""
    from labeler.bundle import Bundle
    from labeler.data import detect_format
    from labeler.decision import check_decision, check_objective
    from labeler.labelmap import LabelMap
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
        raw.setdefault("objective", str(goal))  # candidates tune their rules for what the bundle's rule is tuned for
    params = strategy_cls.check_params(raw)
    data, valid, unlabelled_path, split_info = _resolve_split_dir(data, valid)
    augmentation = _augmentation(augment, augment_copies, augment_seed, augment_model, strategy, valid is not None)
    opts = _options(_flags(fmt, text_column, title_column, body_column, label_column, include_prs),
                    split_info.get("input"), "split.json", data)
    lm: Any = label_map
    if lm is None and split_info.get("label_map"):
        lm = LabelMap.from_dict(split_info["label_map"])
        typer.echo(f"using split.json's label map ({len(lm.mapping)} raw names -> {len(lm.labels)} labels; "
                   "--label-map overrides)", err=True)
    prepared = prepare(data, lm, opts, require_every_label=True)
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
                          metadata=prepared.metadata(), augment=augmentation)
    # how the data was read, so evaluate and predict read theirs the same way
    bundle.manifest["input"] = {**opts.recorded(), "format": detect_format(data, opts.format)}
    bundle.manifest["label_map"] = prepared.label_map.to_dict()
    bundle.save(output)
    line = f"saved {output} ({bundle.decision.describe()}, trained in {bundle.manifest['training']['seconds']:.1f}s)"
    if "augment" in bundle.manifest:
        a = bundle.manifest["augment"]
        line += f"; {a['method']} augmentation added {a['n_added']} copies of {a['n_original']} issues"
    if "validation" in bundle.manifest:
        v = bundle.manifest["validation"]
        line += f"; validation micro F1 {v['micro_f1']:.3f}, macro F1 {v['macro_f1']:.3f}"
    if bundle.strategy.name == "auto":
        info = bundle.strategy.fitted_info
        line += f"\nauto chose {info['chosen']}: {info['why']}"
    if bundle.decision.suggest_only:
        line += f"\nsuggest-only (cannot reach {goal} on validation): {', '.join(bundle.decision.suggest_only)}"
    typer.echo(line)


def _adapt_default(name: str) -> str:
    from labeler.adapt import AdaptParams

    return f"(default {AdaptParams.model_fields[name].default})"


@app.command()
@friendly
def adapt(data: Annotated[list[Path], typer.Argument(help="issue files (JSONL or CSV; every row, labelled or not) or directories written by split (their train and unlabelled files; their valid and test issues are left out)", show_default=False)],
          output: Annotated[Path, typer.Option("--output", "-o", help="encoder directory to write (checkpoints in its checkpoints/)", show_default=False)],
          exclude: Annotated[Optional[list[Path]], typer.Option("--exclude", help="leave out the issues of this file, or the valid and test issues of this split directory (same GitHub id or same text); repeatable")] = None,
          model: Annotated[Optional[str], typer.Option(help="encoder to adapt: hub id or directory (default: the embedded all-MiniLM-L6-v2, which gets a fresh masked-LM head)", show_default=False)] = None,
          budget: Annotated[Optional[float], typer.Option(help="seconds of training; the step in progress ends and is checkpointed (continue with --resume) (default: no limit)", show_default=False)] = None,
          epochs: Annotated[Optional[int], typer.Option(help=f"passes over the training texts {_adapt_default('epochs')}", show_default=False)] = None,
          max_length: Annotated[Optional[int], typer.Option(help=f"tokens per issue {_adapt_default('max_length')}", show_default=False)] = None,
          batch_size: Annotated[Optional[int], typer.Option(help=f"texts per step {_adapt_default('batch_size')}", show_default=False)] = None,
          learning_rate: Annotated[Optional[float], typer.Option(help=f"AdamW peak learning rate {_adapt_default('learning_rate')}", show_default=False)] = None,
          mlm_probability: Annotated[Optional[float], typer.Option(help=f"share of tokens masked {_adapt_default('mlm_probability')}", show_default=False)] = None,
          heldout: Annotated[Optional[str], typer.Option(help=f"texts kept out of training to measure perplexity before and after: a fraction or a count, 0 for none {_adapt_default('heldout')}", show_default=False)] = None,
          save_steps: Annotated[Optional[int], typer.Option(help=f"checkpoint every this many steps {_adapt_default('save_steps')}", show_default=False)] = None,
          resume: Annotated[bool, typer.Option(help="continue from the last checkpoint in OUTPUT/checkpoints (same inputs and options; --epochs may grow)")] = False,
          seed: Annotated[Optional[int], typer.Option(help=f"seed of the held-out split, masking, new head and data order {_adapt_default('seed')}", show_default=False)] = None,
          device: Annotated[Optional[str], typer.Option(help="auto (CUDA when torch sees it), cpu, cuda (default: auto)", show_default=False)] = None,
          progress: Annotated[bool, typer.Option(help="show progress bars and the loss per epoch")] = True,
          fmt: FormatOpt = None, text_column: TextColOpt = None, title_column: TitleColOpt = None,
          body_column: BodyColOpt = None, include_prs: PrOpt = None):
    """Domain adaptation: masked-LM training of an encoder on a repository's issue texts
    (labelled and unlabelled), never its evaluation issues. OUTPUT loads as `-p model=OUTPUT`
    in finetune, setfit, knn, zero_shot and linear; adapt.json reports the held-out
    perplexity before and after."""
    from labeler.adapt import adapt as run_adapt
    from labeler.adapt import check_params, evaluation_files, gather_texts

    given = {"model": model, "budget": budget, "epochs": epochs, "max_length": max_length, "batch_size": batch_size,
             "learning_rate": learning_rate, "mlm_probability": mlm_probability, "save_steps": save_steps,
             "seed": seed, "device": device,
             "heldout": None if heldout is None else _size(heldout, "heldout", 0.1)}
    params = check_params({k: v for k, v in given.items() if v is not None})  # before any data is read
    flags = _flags(fmt, text_column, title_column, body_column, None, include_prs)
    inputs: list = []
    excluded: list = []
    for path in data:
        if path.is_dir():  # a split directory: train + unlabelled in, valid + test out
            train_file, _, unlabelled_file, info = _resolve_split_dir(path, None)
            opts = _options(flags, info.get("input"), "split.json", train_file)
            inputs += [(f, opts) for f in (train_file, unlabelled_file) if f is not None]
            excluded += [(f, opts) for f in evaluation_files(path)]
        else:
            inputs.append((path, _options(flags, path=path)))
    for path in exclude or []:
        if path.is_dir():
            info = _resolve_split_dir(path, None)[3] if (path / "split.json").is_file() else {}
            excluded += [(f, _options(flags, info.get("input"), "", f)) for f in evaluation_files(path)]
        else:
            excluded.append((path, _options(flags, path=path)))
    corpus = gather_texts(inputs, excluded)
    typer.echo(f"{corpus.read} issues read, {len(corpus.texts)} texts to adapt on; {corpus.excluded} excluded as "
               f"evaluation issues" + (f" (of {', '.join(corpus.excluded_from)})" if corpus.excluded_from else
                                       " (no --exclude and no split directory given)")
               + f", {corpus.duplicates} duplicates" + (f", {corpus.pull_requests} pull requests" if corpus.pull_requests else ""),
               err=True)
    report = run_adapt(corpus.texts, output, resume=resume, progress=progress, data=corpus.summary(), **params)
    if report["new_mlm_head"]:
        typer.echo("the encoder had no masked-LM head: it was given a new one, so the 'before' perplexity "
                   "is that of an untrained head", err=True)
    line = (f"saved {output} ({report['steps']} steps" + (f", {report['steps_this_run']} in this run from "
                                                          f"{report['resumed_from']}" if report["resumed_from"] else "")
            + f", {report['texts']['train']} texts, {report['seconds']:.1f}s on {report['device']})")
    if report["before"] and report["after"] and report["before"]["perplexity"] is not None:
        line += (f"\nheld-out perplexity ({report['texts']['heldout']} texts, {report['after']['masked_tokens']} masked "
                 f"tokens): before {report['before']['perplexity']:.2f}, after {report['after']['perplexity']:.2f} "
                 f"(masked-LM loss {report['before']['loss']:.3f} -> {report['after']['loss']:.3f})")
    else:
        line += "\nno held-out masked tokens: no perplexity report (--heldout)"
    if report["stopped_by_budget"]:
        line += "\nthe budget stopped training: continue with --resume (same inputs and options)"
    line += f"\nuse it as: issue-labeler train ... -p model={output}"
    typer.echo(line)


def _augmentation(method: str | None, copies: int | None, seed: int | None, model: Path | None,
                  strategy: str, has_valid: bool):
    """The train command's --augment options as an Augmentation, its augmenter loaded (a
    missing WordNet or a model without an MLM head fails before any data is read); None
    without --augment, where the other --augment-* options are errors."""
    if method is None:
        given = [name for name, value in (("--augment-copies", copies), ("--augment-seed", seed),
                                          ("--augment-model", model)) if value is not None]
        if given:
            raise LabelerError(f"{', '.join(given)} need(s) --augment synonym or --augment contextual")
        return None
    from labeler.augment import Augmentation, check_strategy, make_augmenter

    check_strategy(strategy, has_valid)
    augmenter = make_augmenter(method, model=model)
    return Augmentation(augmenter, copies=copies if copies is not None else 1, seed=seed if seed is not None else 0)


def _bundle_label_map(model, label_map: Path | None):
    """--label-map, else the map the bundle was trained with (said on stderr), else every
    bundle label as itself (bundles from before label maps were recorded)."""
    from labeler.labelmap import LabelMap

    if label_map is not None:
        return label_map
    recorded = model.manifest.get("label_map")
    if recorded:
        lm = LabelMap.from_dict(recorded)
        if any(raw != target for raw, target in lm.mapping.items()):
            typer.echo(f"using the bundle's label map ({len(lm.mapping)} raw names -> {len(lm.labels)} labels; "
                       "--label-map overrides)", err=True)
        return lm
    return LabelMap({l: l for l in model.labels})


def _write_errors(path: Path, rows: list[dict]) -> None:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        header = list(dict.fromkeys(k for row in rows for k in row)) or ["row"]
        with open(path, "w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=header)
            writer.writeheader()
            for row in rows:
                flat = {k: ("; ".join(f"{l} {s:.3f}" for l, s in v.items()) if isinstance(v, dict)
                            else ", ".join(v) if isinstance(v, list) else v) for k, v in row.items()}
                writer.writerow(flat)
        return
    from labeler.data import write_jsonl

    write_jsonl(path, rows)


@app.command()
@friendly
def evaluate(bundle: Path, data: Path, as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
             by: Annotated[Optional[str], typer.Option("--by", help="also score each value of this column separately (e.g. --by repo)")] = None,
             errors: Annotated[Optional[Path], typer.Option("--errors", help="write the misclassified issues with their scores to this file (JSONL, or CSV for a .csv name)")] = None,
             label_map: LabelMapOpt = None, fmt: FormatOpt = None, text_column: TextColOpt = None,
             title_column: TitleColOpt = None, body_column: BodyColOpt = None,
             label_column: LabelColOpt = None, include_prs: PrOpt = None):
    """Score a bundle on labelled issues: micro, macro and per-label F1 (and per --by value).
    The data is read as the bundle's training data was, unless flags say otherwise."""
    import numpy as np

    from labeler.bundle import Bundle
    from labeler.metrics import evaluate as score
    from labeler.pipeline import prepare

    model = Bundle.load(bundle)
    opts = _options(_flags(fmt, text_column, title_column, body_column, label_column, include_prs),
                    model.input_options, "the bundle", data)
    prepared = prepare(data, _bundle_label_map(model, label_map), opts)
    texts = prepared.texts()
    y = model.strategy.binarize(prepared.label_sets())
    started = time.perf_counter()
    scores = model.predict_proba(texts)
    pred = model.decision.decide(scores, model.labels)
    elapsed = time.perf_counter() - started
    result = score(y, pred, model.labels)
    result["ms_per_issue"] = 1000 * elapsed / max(len(texts), 1)
    groups: dict[str, Any] = {}
    if by is not None:
        values = [prepared.labelled[i].column(by) for i in range(len(texts))]
        if all(v is None for v in values):
            raise DataError(f"{data}: no column {by!r} to evaluate --by")
        keys = ["(none)" if v is None else str(v) for v in values]
        for key in sorted(set(keys)):
            idx = np.array([i for i, k in enumerate(keys) if k == key])
            groups[key] = score(y[idx], pred[idx], model.labels)
        result["by"] = {"column": by, "values": groups}
    if errors is not None:
        rows = []
        for i, issue in enumerate(prepared.labelled):
            if np.array_equal(y[i], pred[i]):
                continue
            true = [l for l, v in zip(model.labels, y[i]) if v]
            got = [l for l, v in zip(model.labels, pred[i]) if v]
            row: dict[str, Any] = {"row": issue.row}
            if issue.number is not None:
                row["number"] = issue.number
            if by is not None:
                row[by] = issue.column(by)
            row.update({"title": issue.title, "body": issue.body, "labels": true, "predicted": got,
                        "missing": [l for l in true if l not in got], "extra": [l for l in got if l not in true],
                        "scores": {model.labels[j]: round(float(scores[i, j]), 4) for j in np.argsort(-scores[i])}})
            rows.append(row)
        _write_errors(errors, rows)
        typer.echo(f"wrote {len(rows)} misclassified issue(s) of {len(texts)} to {errors}", err=True)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(f"{result['n']} issues: micro F1 {result['micro_f1']:.3f}, macro F1 {result['macro_f1']:.3f} "
               f"({result['ms_per_issue']:.2f} ms/issue)")
    width = max(len(l) for l in model.labels)
    typer.echo(f"{'label':<{width}}  precision  recall     f1  support")
    for label, m in result["per_label"].items():
        typer.echo(f"{label:<{width}}  {m['precision']:9.3f}  {m['recall']:6.3f}  {m['f1']:5.3f}  {m['support']:7d}")
    if groups:
        width = max([len(by), len("(all)")] + [len(k) for k in groups])
        typer.echo(f"\n{by:<{width}}  {'n':>5}  micro F1  macro F1")
        for key, m in [("(all)", result), *groups.items()]:
            typer.echo(f"{key:<{width}}  {m['n']:5d}  {m['micro_f1']:8.3f}  {m['macro_f1']:8.3f}")


@app.command()
@friendly
def predict(bundle: Path,
            data: Annotated[Optional[Path], typer.Argument(help="issues to label: a JSONL or CSV file ('-' or none: stdin)")] = None,
            title: Annotated[Optional[str], typer.Option(help="issue title")] = None,
            body: Annotated[str, typer.Option(help="issue body")] = "",
            explain: Annotated[bool, typer.Option(help="also print the strategy's explanation")] = False,
            as_json: Annotated[bool, typer.Option("--json", help="print JSON lines: every label with its score and decision (apply, suggest, below), the bundle's name and version")] = False,
            all_scores: Annotated[bool, typer.Option("--all-scores", help="table: every label with its score and decision, not only the chosen ones")] = False,
            top_k: Annotated[Optional[int], typer.Option("--top-k", min=1, help="show the K best-scoring labels of each issue, whatever their decision")] = None,
            precision: Annotated[Optional[float], typer.Option("--precision", help="apply only labels that reach this validation precision (default: the bundle's objective)")] = None,
            fmt: FormatOpt = None, text_column: TextColOpt = None, title_column: TitleColOpt = None,
            body_column: BodyColOpt = None):
    """Labels with scores and decisions for one issue (--title/--body), or for the issues of a
    JSONL or CSV file or stdin (read with the bundle's column options unless flags say otherwise)."""
    from labeler.bundle import Bundle
    from labeler.data import read_issues

    if precision is not None and not 0 < precision <= 1:
        raise LabelerError(f"--precision needs 0 < P <= 1, got {precision}")
    model = Bundle.load(bundle)
    if title is not None:
        if data is not None:
            raise LabelerError("give --title (and --body) or a data file, not both")
        items: list[tuple[dict[str, Any], str]] = [({}, issue_text(title, body))]
    else:
        if data is None or str(data) == "-":
            if sys.stdin.isatty():
                raise LabelerError("give --title (and --body), a JSONL or CSV file, or issues on stdin")
        opts = _options(_flags(fmt, text_column, title_column, body_column, None, None),
                        model.input_options, "the bundle", data if data is not None else Path("-"))
        issues = read_issues(data, opts, sys.stdin)
        items = [({"number": i.number} if i.number is not None else {"row": i.row}, i.text) for i in issues]
    calls = model.classify([text for _, text in items], precision=precision) if items else []
    about = {"name": bundle.resolve().name, "version": model.version, "strategy": model.manifest.get("strategy")}
    for (ident, text), row in zip(items, calls):
        shown = row[:top_k] if top_k else row
        record: dict[str, Any] = {
            **ident,
            "labels": [{"label": c.label, "score": round(c.score, 4), "decision": c.decision} for c in shown],
            "apply": [c.label for c in row if c.decision == "apply"],
            "suggest": [c.label for c in row if c.decision == "suggest"],
            "bundle": about,
        }
        if explain:
            record["explain"] = model.explain(text).to_dict()
        if as_json:
            typer.echo(json.dumps(record, default=str))
            continue
        head = f"#{ident['number']}: " if ident.get("number") is not None else \
            (f"row {ident['row']}: " if ident.get("row") is not None else "")
        if not (all_scores or top_k):
            shown = [c for c in row if c.decision != "below"]
        typer.echo(head + (", ".join(f"{c.label} ({c.score:.2f}, {c.decision})" for c in shown) or "(no label)"))
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


@app.command("augment-setup")
@friendly
def augment_setup(nltk_data: Annotated[Optional[Path], typer.Option("--nltk-data", help="NLTK data directory to install into (default: ~/nltk_data)")] = None,
                  source: Annotated[Optional[Path], typer.Option("--from", help="a directory with WordNet 3.0's files (e.g. /usr/share/wordnet) or with Debian's wordnet-base and wordnet-sense-index .deb files (default: /usr/share/wordnet, else `apt-get download` both)")] = None):
    """Install WordNet 3.0 for `train --augment synonym`: copy Debian's WordNet files into an
    NLTK data directory, in the layout nltk reads (plus its lexnames file). Safe to repeat."""
    import nltk

    from labeler.augment import default_nltk_data, setup_wordnet

    root = (nltk_data or default_nltk_data()).expanduser().resolve()
    searched = any(Path(p).expanduser().resolve() == root for p in nltk.data.path)  # before setup adds it
    path = setup_wordnet(nltk_data, source)
    typer.echo(f"WordNet installed in {path}")
    if not searched:
        typer.echo(f"nltk does not search {root}: set NLTK_DATA={root} for `train --augment synonym`", err=True)


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


def _add_subcommands() -> None:
    from labeler.cli_models import models_app
    from labeler.cli_retrain import retrain

    app.add_typer(models_app, name="models")
    app.command()(retrain)


_add_subcommands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
