"""A year of a repository, replayed: the model lifecycle of issue #8 measured end to end.

From ``../shared/data/hf-datasets-issues.jsonl.gz`` in time order (issues only, pull requests
left out): the bot starts with no model, so in the first month it answers with the zero-shot
fallback on the label set (as a fresh install does); at the end of every month ``retrain``
(:func:`labeler.retrain.retrain`) trains a candidate on every labelled issue created so far,
holds out the newest ones, and promotes the candidate through the gate into a registry;
the next month's new issues are labelled by whatever is active then. Per month it records the
training size, whether the candidate was promoted (and why not), the precision and recall of
the labels the bot would have **applied** at the precision target, of those it would have
**suggested**, and the seconds the retrain took on this machine.

The labels an issue carries today stand in for the labels merged by the end of its month
(the data is a snapshot; a label added years later counts as known). Only issues that carry a
mapped label are scored; an issue with none of the label set has no truth to score against.

Resumable: each month is a JSON line in ``--out`` (default experiments/results/lifecycle.jsonl)
and the registry lives in ``--work``; a re-run continues after the last finished month
(``--fresh`` starts over). ``--report`` writes lifecycle.md and lifecycle.png from the rows.

    python experiments/lifecycle.py [--start 2020-05] [--months 12] [--budget 90] [--precision 0.9]
    python experiments/lifecycle.py --report
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labeler.bundle import Bundle  # noqa: E402
from labeler.data import issue_text, parse_labels  # noqa: E402
from labeler.labelmap import LabelMap  # noqa: E402
from labeler.registry import Registry  # noqa: E402
from labeler.retrain import RetrainSettings, retrain  # noqa: E402

REPO = "huggingface/datasets"
RESULTS = ROOT / "experiments" / "results"


def months_of(rows: list[dict], start: str | None, count: int) -> list[str]:
    """``count`` consecutive YYYY-MM months from ``start`` (default: the data's first month)."""
    first = start or min(r["created_at"][:7] for r in rows)
    y, m = map(int, first.split("-"))
    out = []
    for _ in range(count):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def rates(calls_per_issue: list[list], truth: list[set], which: set[str]) -> dict[str, float | int]:
    """Precision and recall of the labels whose decision is in ``which``."""
    chosen = [{c.label for c in calls if c.decision in which} for calls in calls_per_issue]
    tp = sum(len(c & t) for c, t in zip(chosen, truth))
    n_chosen, n_true = sum(map(len, chosen)), sum(map(len, truth))
    return {"n": n_chosen, "tp": tp, "precision": tp / n_chosen if n_chosen else float("nan"),
            "recall": tp / n_true if n_true else float("nan")}


def simulate(args: argparse.Namespace) -> None:
    with gzip.open(Path(args.data_dir) / "hf-datasets-issues.jsonl.gz", "rt", encoding="utf-8") as fh:
        rows = [r for r in map(json.loads, fh) if not r.get("pull_request")]
    rows.sort(key=lambda r: (r["created_at"], r["number"]))
    label_map = LabelMap.from_yaml(ROOT / args.label_map)
    months = months_of(rows, args.start, args.months)
    out, work = Path(args.out), Path(args.work)
    if args.fresh:
        out.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)
    done = {json.loads(l)["month"] for l in out.read_text().splitlines()} if out.exists() else set()
    work.mkdir(parents=True, exist_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    registry = Registry(work / "registry")
    settings = RetrainSettings.parse(strategy=args.strategy, budget=args.budget, objective=args.objective,
                                     holdout=args.holdout, margin=args.margin)
    fallback = Bundle.train("zero_shot", [], [], labels=label_map.labels, descriptions=label_map.descriptions)

    for month in tqdm(months, desc="months", unit="month"):
        if month in done:
            continue
        new = [r for r in rows if r["created_at"][:7] == month]
        # 1. the month's new issues, labelled by what is active now (zero-shot before any model)
        active = registry.active(REPO)
        model = active.load() if active else fallback
        issues = [(r, set(label_map.map_labels(parse_labels(r.get("labels"))))) for r in new]
        scored = [(r, t) for r, t in issues if t]
        calls = model.classify([issue_text(r.get("title"), r.get("body")) for r, _ in scored],
                               precision=args.precision) if scored else []
        truth = [t for _, t in scored]
        row = {"month": month, "new_issues": len(new), "scored_issues": len(scored),
               "model": f"version {active.number} ({active.info.get('strategy')})" if active else "zero-shot fallback",
               "applied": rates(calls, truth, {"apply"}), "suggested": rates(calls, truth, {"suggest"}),
               "applied_or_suggested": rates(calls, truth, {"apply", "suggest"})}
        # 2. month end: retrain on every issue created so far, through the gate
        seen = [r for r in rows if r["created_at"][:7] <= month]
        data = work / "issues-so-far.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in seen))
        n_labelled = sum(1 for r in seen if label_map.map_labels(parse_labels(r.get("labels"))))
        row["labelled_so_far"] = n_labelled
        started = time.perf_counter()
        try:
            result = retrain(data, registry=registry, repo=REPO, settings=settings, label_map=label_map,
                             report_dir=work / "reports", source=f"simulated month {month}")
            report = result.report
            row.update(retrain="promoted" if result.promoted else "staged", version=result.version.number,
                       train_size=report["data"]["sizes"]["train"], holdout=report["data"]["sizes"]["holdout"],
                       chosen=report["candidate"].get("chosen"), reasons=result.reasons,
                       holdout_micro_f1=report["candidate"]["metrics"]["micro_f1"],
                       holdout_macro_f1=report["candidate"]["metrics"]["macro_f1"])
        except Exception as exc:  # too little data in the first months: said, not fatal
            row.update(retrain="failed", reasons=[str(exc).splitlines()[0]], train_size=0)
        row["retrain_seconds"] = round(time.perf_counter() - started, 1)
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
        tqdm.write(f"{month}: {len(scored)} scored, applied P={row['applied']['precision']:.2f} "
                   f"R={row['applied']['recall']:.2f}; retrain {row['retrain']} in {row['retrain_seconds']}s")


def _pct(value: float) -> str:
    return "-" if value != value else f"{value:.2f}"  # NaN: nothing applied / nothing to find


def _ratio(num: int, den: int) -> str:
    return _pct(num / den if den else float("nan"))


def report(args: argparse.Namespace) -> None:
    rows = [json.loads(l) for l in Path(args.out).read_text().splitlines()]
    meta = json.loads(Path(args.out).with_suffix(".command").read_text()) if Path(args.out).with_suffix(".command").exists() else {}
    lines = [
        "# Model lifecycle: a year of huggingface/datasets, replayed",
        "",
        "Each month's new issues are labelled by the model active at that moment (the zero-shot fallback "
        "before the first promotion); at month end `retrain` trains a candidate on every labelled issue so far "
        "(newest 20% held out) and promotes it only through the gate. Precision target for applying: "
        f"{meta.get('precision', '?')}. Scored: issues that carry a label of the label map. Machine: "
        f"{os.cpu_count()} cores, no GPU.",
        "",
        "Made by:",
        "",
        "```",
        meta.get("command", "python experiments/lifecycle.py"),
        "python experiments/lifecycle.py --report" + (
            "" if Path(args.out).resolve() == (RESULTS / "lifecycle.jsonl").resolve()
            else f" --out {shlex.quote(os.path.relpath(Path(args.out).resolve(), ROOT))}"),
        "```",
        "",
        "| month | labelled so far | model that labelled the month | scored | applied P | applied R | suggested P | "
        "suggested R | applied+suggested R | retrain | train size | holdout micro/macro F1 | retrain s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        f1 = (f"{r['holdout_micro_f1']:.3f} / {r['holdout_macro_f1']:.3f}" if "holdout_micro_f1" in r else "-")
        lines.append(f"| {r['month']} | {r['labelled_so_far']} | {r['model']} | {r['scored_issues']} | "
                     f"{_pct(r['applied']['precision'])} | {_pct(r['applied']['recall'])} | "
                     f"{_pct(r['suggested']['precision'])} | {_pct(r['suggested']['recall'])} | "
                     f"{_pct(r['applied_or_suggested']['recall'])} | {r['retrain']} | {r.get('train_size', 0)} | "
                     f"{f1} | {r['retrain_seconds']} |")
    totals = {k: (sum(r[k]["tp"] for r in rows), sum(r[k]["n"] for r in rows)) for k in ("applied", "suggested")}
    lines += ["", "Over the year: applied precision "
              f"{totals['applied'][0]}/{totals['applied'][1]} = {_ratio(*totals['applied'])}, "
              f"suggested precision {totals['suggested'][0]}/{totals['suggested'][1]} = "
              f"{_ratio(*totals['suggested'])}; "
              f"{sum(r['retrain'] == 'promoted' for r in rows)} of {len(rows)} retrains promoted.", ""]
    why = [f"- {r['month']}: {'; '.join(r['reasons'])}" for r in rows if r["retrain"] != "promoted"]
    if why:
        lines += ["Retrains not promoted, and why:", "", *why, ""]
    md = Path(args.out).with_suffix(".md")
    md.write_text("\n".join(lines))
    print("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(10, 5))
    ax2 = ax.twinx()
    ax2.bar(x, [r["labelled_so_far"] for r in rows], color="0.88", label="labelled issues so far")
    ax2.set_ylabel("labelled issues so far")
    for key, metric, style, name in (("applied", "precision", "o-", "applied: precision"),
                                     ("applied", "recall", "s-", "applied: recall"),
                                     ("suggested", "precision", "v:", "suggested: precision"),
                                     ("applied_or_suggested", "recall", "^--", "applied or suggested: recall")):
        ax.plot(x, [r[key][metric] for r in rows], style, label=name)
    for i, r in enumerate(rows):
        if r["retrain"] == "promoted":
            ax.axvline(i + 0.5, color="tab:green", alpha=0.25, lw=3)
    ax.axhline(meta.get("precision", 0.9), color="tab:red", ls=":", lw=1, label="precision target")
    ax.set_zorder(ax2.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.set_xticks(x, [r["month"] for r in rows], rotation=45, ha="right")
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("precision / recall of the month's labels")
    ax.set_title("A year of huggingface/datasets: labels by the active model (green: a promotion after that month)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(Path(args.out).with_suffix(".png"), dpi=120)
    print(f"wrote {md} and {Path(args.out).with_suffix('.png')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("ISSUE_LABELER_DATA") or str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--label-map", default="experiments/labels/hf-datasets.yml")
    parser.add_argument("--start", default="2020-05", help="first month, YYYY-MM (the data's first full month)")
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--strategy", default="auto")
    parser.add_argument("--budget", type=float, default=90.0, help="auto's seconds per retrain (under 180 s leaves "
                        "setfit/finetune out)")
    parser.add_argument("--objective", default="micro")
    parser.add_argument("--holdout", default="20%")
    parser.add_argument("--margin", type=float, default=0.0)
    parser.add_argument("--precision", type=float, default=0.9, help="the bot's precision target for applying")
    parser.add_argument("--out", default=str(RESULTS / "lifecycle.jsonl"))
    parser.add_argument("--work", default=str(ROOT / ".lifecycle"), help="registry and reports of the replay")
    parser.add_argument("--fresh", action="store_true", help="forget finished months and the registry")
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    if args.report:
        report(args)
        return
    if args.strategy != "auto":
        args.budget = None
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)  # for the .command file
    Path(args.out).with_suffix(".command").write_text(json.dumps(
        {"command": "python experiments/lifecycle.py " + shlex.join(sys.argv[1:]), "precision": args.precision}))
    simulate(args)


if __name__ == "__main__":
    main()
