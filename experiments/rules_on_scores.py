"""Decision rules and averages of strategies, compared on saved scores without training again.

``benchmark.py --save-scores DIR`` keeps, for every run, the scores its bundle tuned the
decision rule on (out-of-fold training scores where the strategy has them, then validation's)
and its test scores, one folder per row of the report. This script reads one or more such
folders and, for every seed and slice they all have:

* averages their scores when given several folders (``--combine logodds``, the default, or
  ``prob``), after checking that they come from the same split;
* tunes decision rules for the run's objective (``--objective`` to change it), with the
  run's exclusive label groups, and scores each on test:
  ``pooled``: what ``Bundle.train`` does (out-of-fold and validation scores together; where
  only some of the folders' strategies have out-of-fold scores, validation's alone);
  ``validation``: validation scores alone; ``global``: one threshold for every label,
  tuned on the pooled scores;
* prints mean micro / macro F1 over the seeds, per slice, as a Markdown table.

The test scores choose nothing here: every rule is tuned on the saved tuning scores alone,
so the table is a fair comparison, though a choice made by looking at it is tuned on test.

Example (experiments/README.md, "A stronger encoder, a supervised body, ..."):

    python experiments/benchmark.py --dataset hf-datasets --strategies linear --seeds 0-4 --slices all \\
        --param linear.features='"both"' --objective micro+macro --variant both --save-scores scores
    python experiments/rules_on_scores.py scores/hf-datasets/linear[both]
    python experiments/rules_on_scores.py scores/hf-datasets/linear[both] scores/hf-datasets/setfit[...]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
from scipy.special import expit, logit

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "experiments")]

from benchmark import SLICE_ORDER  # noqa: E402
from labeler.decision import Objective, check_objective, tune  # noqa: E402
from labeler.errors import LabelerError  # noqa: E402
from labeler.metrics import f1_scores  # noqa: E402

RULES = ("pooled", "validation", "global")
#: scores are clipped this far from 0 and 1 before their log-odds are taken
EPS = 1e-6


def load_runs(folder: Path) -> dict[tuple[int, str], dict]:
    """``{(seed, slice): arrays}`` of one ``--save-scores`` folder."""
    runs = {}
    for path in sorted(folder.glob("seed*-*.npz")):
        found = re.fullmatch(r"seed(\d+)-(\w+)\.npz", path.name)
        if not found:
            continue
        with np.load(path, allow_pickle=False) as data:
            runs[(int(found[1]), found[2])] = {k: data[k] for k in data.files}
    if not runs:
        raise SystemExit(f"{folder}: no seed<S>-<slice>.npz files (made by benchmark.py --save-scores)")
    return runs


def combine(runs: list[dict], key: str, how: str) -> np.ndarray:
    """The mean of several runs' scores, in log-odds (then back to a probability) or as is."""
    if len(runs) == 1:
        return runs[0][key]
    if how == "prob":
        return np.mean([r[key] for r in runs], axis=0)
    return expit(np.mean([logit(np.clip(r[key], EPS, 1 - EPS)) for r in runs], axis=0))


def same_split(runs: list[dict]) -> list[dict]:
    """The runs, checked to share labels, validation and test issues; when their out-of-fold
    training rows differ (one strategy has them, another not), cut to validation's rows,
    the rows they all have."""
    first = runs[0]
    n_valid = int(first["n_valid"])
    for other in runs[1:]:
        if list(other["labels"]) != list(first["labels"]):
            raise SystemExit("the folders were run with different label sets")
        if (int(other["n_valid"]) != n_valid or not np.array_equal(other["test_y"], first["test_y"])
                or not np.array_equal(other["tuning_y"][-n_valid:], first["tuning_y"][-n_valid:])):
            raise SystemExit("the folders come from different splits: run them with the same dataset and seeds")
    if len({r["tuning_y"].shape for r in runs}) > 1:
        runs = [{**r, "tuning_scores": r["tuning_scores"][-n_valid:], "tuning_y": r["tuning_y"][-n_valid:]}
                for r in runs]
    return runs


def evaluate(runs: list[dict], how: str, objective: str | None) -> dict[str, tuple[float, float]]:
    """Test micro and macro F1 of each rule in :data:`RULES` for one seed and slice."""
    runs = same_split(runs)
    first = runs[0]
    labels = [str(x) for x in first["labels"]]
    goal = Objective.parse(objective or str(first["objective"]))
    exclusive = json.loads(str(first["exclusive"]))
    kind = str(first["decision"])
    tuning, y, test = combine(runs, "tuning_scores", how), first["tuning_y"], combine(runs, "test_scores", how)
    n_valid = int(first["n_valid"])
    out = {}
    for rule_name, (scores, truth, rule_kind) in {
        "pooled": (tuning, y, kind),
        "validation": (tuning[-n_valid:], y[-n_valid:], kind),
        "global": (tuning, y, "threshold"),
    }.items():
        rule, _ = tune(scores, truth, labels, kind=rule_kind, objective=goal, exclusive=exclusive)
        out[rule_name] = f1_scores(first["test_y"], rule.decide(test, labels))
    return out


def table(folders: list[Path], how: str, objective: str | None) -> str:
    all_runs = [load_runs(f) for f in folders]
    keys = sorted(set.intersection(*(set(r) for r in all_runs)), key=lambda k: (SLICE_ORDER.index(k[1])
                  if k[1] in SLICE_ORDER else 99, k[0]))
    if not keys:
        raise SystemExit("the folders have no seed and slice in common")
    results: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for seed, name in keys:
        for rule, f1 in evaluate([r[(seed, name)] for r in all_runs], how, objective).items():
            results.setdefault(name, {}).setdefault(rule, []).append(f1)
    slices = list(results)
    what = " + ".join(f.name for f in folders) + (f" (mean of {how})" if len(folders) > 1 else "")
    lines = [f"{what}: micro / macro F1 on test, mean over seeds", "",
             "| rule | " + " | ".join(f"{s} ({len(results[s]['pooled'])} seeds)" for s in slices) + " |",
             "|---|" + "---|" * len(slices)]
    for rule in RULES:
        cells = []
        for s in slices:
            f1 = np.array(results[s][rule])
            cells.append(f"{f1[:, 0].mean():.3f} / {f1[:, 1].mean():.3f}")
        lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="folders written by benchmark.py --save-scores")
    parser.add_argument("--combine", choices=["logodds", "prob"], default="logodds",
                        help="how several folders' scores are averaged")
    parser.add_argument("--objective", default=None,
                        help="what the rules are tuned for (default: each run's own objective)")
    args = parser.parse_args(argv)
    if args.objective is not None:
        try:
            check_objective(args.objective)
        except LabelerError as exc:
            raise SystemExit(f"--objective: {exc}") from None
    for folder in args.folders:
        if not folder.is_dir():
            raise SystemExit(f"{folder}: not a directory")
    print(table(args.folders, args.combine, args.objective))


if __name__ == "__main__":
    main()
