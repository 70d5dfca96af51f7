"""CPU budget check (issue #7, point 5): do ``finetune`` and ``setfit`` with their DEFAULT
parameters train on 1,000 issues in at most 10 minutes on this machine's CPU cores?

Data (``--dataset``): hf-datasets (default: the benchmark rows the defaults are compared with
are hf-datasets rows) or sklearn, split as the benchmark does (``split_indices(y, seed=0)``:
50 % train, 25 % valid, 25 % test). Training uses the first 1,000 training rows; when the
training part is smaller (hf-datasets: 789, sklearn: 836), the first rows of the test part make
up the difference, so the validation set (what training evaluates every epoch and the bundle tunes
its thresholds on) keeps its full size and the timing stays on the safe side; test is scored
on what is left of it.

For each strategy the clock runs around ``Bundle.train`` (loading the model, training with
per-epoch validation, the last evaluation and reloading of the best checkpoint, the bundle's
threshold tuning on validation); importing torch/transformers/setfit is timed once and added,
so "seconds to a trained bundle" is what ``issue-labeler train`` would cost. Scoring the test
set is timed separately. A strategy passes when its seconds to a trained bundle are at most
``--limit`` (600).

Writes ``experiments/results/cpu_budget.json`` (after every strategy) and ``cpu_budget.md``.
Progress bars are on (``progress=True``, display only; every other parameter is the default).

    HF_HUB_OFFLINE=1 python experiments/cpu_budget.py            # both strategies, ~20 min on 2 cores
    HF_HUB_OFFLINE=1 python experiments/cpu_budget.py --strategies setfit --n 200
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labeler.bundle import Bundle  # noqa: E402
from labeler.pipeline import prepare  # noqa: E402
from labeler.splits import split_indices  # noqa: E402
from labeler.strategies import get_strategy  # noqa: E402

sys.path.insert(0, str(ROOT / "experiments"))
from benchmark import machine  # noqa: E402

#: --dataset: (data file under the data directory, label map)
DATASETS = {"hf-datasets": ("hf-datasets-issues.jsonl.gz", "experiments/labels/hf-datasets.yml"),
            "sklearn": ("sklearn-issues.jsonl.gz", "experiments/labels/sklearn.yml")}
#: the benchmark's results these defaults must not fall behind (hf-datasets, cpu-cut variants,
#: slice "all", about 790 training issues; sklearn has no finetune/setfit rows)
REFERENCE = {"finetune": "hf-datasets, slice all (~790 issues): .845 micro F1, 246 s (epochs 5, min_steps 80, "
                         "max_seconds 240)",
             "setfit": "hf-datasets, slice all (~790 issues): .808 micro F1, 117 s (max_steps 60)"}
#: their micro F1 (mean over seeds), which a run on hf-datasets is held to within MAX_LOSS
REFERENCE_MICRO = {"finetune": 0.845, "setfit": 0.808}
MAX_LOSS = 0.01


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover - not on Linux/macOS
        return None


def defaults(name: str) -> dict:
    return {k: v.default for k, v in get_strategy(name).Params.model_fields.items()}


def split(prepared, n: int, seed: int) -> tuple[list[int], list[int], list[int], str]:
    parts = split_indices(prepared.y(), seed=seed)
    train, valid, test = (list(map(int, parts[k])) for k in ("train", "valid", "test"))
    note = f"the first {n} of {len(train)} training rows"
    if len(train) < n:
        extra = min(n - len(train), len(test) // 2)
        note = f"all {len(train)} training rows + the first {extra} test rows (train is smaller than {n})"
        train, test = train + test[:extra], test[extra:]
    return train[:n], valid, test, note


def run_one(name: str, data: dict, import_seconds: float, limit: float, extra: dict | None = None) -> dict:
    texts, label_sets, labels = data["texts"], data["label_sets"], data["labels"]
    pick = lambda idx: ([texts[i] for i in idx], [label_sets[i] for i in idx])  # noqa: E731
    train, valid, test = pick(data["train"]), pick(data["valid"]), pick(data["test"])
    params = {"progress": True, **(extra or {})}  # progress: display only; the rest are the defaults
    print(f"\n=== {name}: {len(train[0])} training issues, defaults {defaults(name)}", flush=True)
    load_before = load_average()
    started = time.perf_counter()
    bundle = Bundle.train(name, *train, labels=labels, descriptions=data["descriptions"], valid=valid,
                          params=params, exclusive=data["exclusive"])
    train_wall = time.perf_counter() - started
    t0 = time.perf_counter()
    scores = bundle.evaluate(*test)
    test_seconds = time.perf_counter() - t0
    info = bundle.strategy.fitted_info
    to_bundle = import_seconds + train_wall
    row = {
        "strategy": name,
        "params": {**defaults(name), **params},
        "n_train": len(train[0]), "n_valid": len(valid[0]), "n_test": len(test[0]),
        "fit_seconds": bundle.manifest["training"]["seconds"],
        "tune_seconds": round(train_wall - bundle.manifest["training"]["seconds"], 2),
        "train_wall_seconds": round(train_wall, 2),
        "seconds_to_bundle": round(to_bundle, 2),
        "test_seconds": round(test_seconds, 2),
        "stopped_by_budget": bool(info.get("stopped_by_budget")),
        "steps": info.get("steps"),
        "epochs_run": info.get("epochs_run"),
        "best_epoch": info.get("best_epoch"),
        "micro_f1": round(float(scores["micro_f1"]), 4),
        "macro_f1": round(float(scores["macro_f1"]), 4),
        "valid_micro_f1": bundle.manifest.get("validation", {}).get("micro_f1"),
        "decision": bundle.decision.describe(),
        "fitted": info,
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "limit_seconds": limit,
        "pass": to_bundle <= limit,
        "reference": REFERENCE.get(name),
    }
    if data["dataset"] == "hf-datasets" and name in REFERENCE_MICRO:
        row["micro_vs_reference"] = round(row["micro_f1"] - REFERENCE_MICRO[name], 4)
        row["f1_pass"] = row["micro_vs_reference"] >= -MAX_LOSS
    how = (f"stopped at the budget after {row['steps']} steps" if row["stopped_by_budget"]
           else f"finished its {row['steps']} steps")
    epochs = f", {row['epochs_run']} epochs (best {row['best_epoch']})" if row["epochs_run"] is not None else ""
    print(f"{name}: training {row['fit_seconds']:.0f} s ({how}{epochs}), + tuning {row['tune_seconds']:.0f} s "
          f"+ imports {import_seconds:.0f} s = {to_bundle:.0f} s to a trained bundle; test scoring "
          f"{test_seconds:.0f} s; test micro/macro F1 {row['micro_f1']:.3f} / {row['macro_f1']:.3f}", flush=True)
    print(f"{'PASS' if row['pass'] else 'FAIL'}: {name} {to_bundle:.0f} s {'<=' if row['pass'] else '>'} "
          f"{limit:.0f} s for {len(train[0])} issues", flush=True)
    if "f1_pass" in row:
        print(f"{'PASS' if row['f1_pass'] else 'FAIL'}: {name} micro F1 {row['micro_f1']:.3f} vs the benchmark's "
              f"{REFERENCE_MICRO[name]:.3f} ({row['micro_vs_reference']:+.3f}; at most {MAX_LOSS} lower)", flush=True)
    return row


def markdown(result: dict, command: str) -> str:
    rows = result["results"]
    lines = [
        "# CPU budget: finetune and setfit with their default parameters on 1,000 issues",
        "",
        f"Issue #7, point 5: training on 1,000 issues must take at most {result['limit_seconds']:.0f} s on "
        f"{result['machine']['cores']} CPU cores. Data: {result['dataset']} ({result['split']}); "
        f"validation {rows[0]['n_valid'] if rows else '-'} issues, test {rows[0]['n_test'] if rows else '-'} issues. "
        f"Made {result['time']} by:",
        "",
        "```",
        command,
        "```",
        "",
        "**Load:** " + result["load_note"],
        "",
        "| strategy | seconds to a trained bundle | of which training | stopped at budget | steps / epochs | "
        "test micro / macro F1 | ≤ limit | micro vs reference |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        epochs = f" / {r['epochs_run']} (best {r['best_epoch']})" if r["epochs_run"] is not None else ""
        lines.append(f"| {r['strategy']} | {r['seconds_to_bundle']:.0f} | {r['fit_seconds']:.0f} | "
                     f"{'yes' if r['stopped_by_budget'] else 'no'} | {r['steps']}{epochs} | "
                     f"{r['micro_f1']:.3f} / {r['macro_f1']:.3f} | {'PASS' if r['pass'] else 'FAIL'} | "
                     + (f"{r['micro_vs_reference']:+.3f} {'PASS' if r['f1_pass'] else 'FAIL'} |" if "f1_pass" in r
                        else "- |"))
    lines += [
        "",
        f"\"Seconds to a trained bundle\" = importing torch/transformers/setfit ({result['import_seconds']:.0f} s, "
        "once) + `Bundle.train`: loading the encoder, training with per-epoch validation, the last evaluation "
        "and reloading of the best checkpoint, threshold tuning on validation. Scoring the test set is not "
        "included (" + ", ".join(f"{r['strategy']} {r['test_seconds']:.0f} s" for r in rows) + ").",
        "",
        ("**Not the defaults** (overridden: " + json.dumps(result["overrides"]) + "). " if result["overrides"]
         else "") +
        "Parameters measured: " + "; ".join(
            f"`{r['strategy']}` " + ", ".join(f"{k}={r['params'][k]}" for k in
                                              ("epochs", "min_steps", "max_steps", "max_seconds", "num_iterations")
                                              if k in r["params"]) for r in rows) + ".",
        "",
        "Reference (the benchmark rows these defaults must not fall behind by more than 0.01 micro F1): "
        + "; ".join(f"{r['strategy']}: {r['reference']}" for r in rows) + ".",
        "",
        "Per-run details (per-epoch validation F1, budget flags) are in `cpu_budget.json`.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--strategies", default="finetune,setfit")
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="hf-datasets",
                        help="hf-datasets: comparable with the benchmark rows in REFERENCE")
    parser.add_argument("--n", type=int, default=1000, help="training issues")
    parser.add_argument("--seed", type=int, default=0, help="split seed")
    parser.add_argument("--limit", type=float, default=600.0, help="seconds allowed to a trained bundle")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "cpu_budget"),
                        help="writes OUT.json and OUT.md")
    parser.add_argument("--param", action="append", default=[],
                        help="STRATEGY.KEY=VALUE (JSON value), for quick checks only: the point is the defaults")
    parser.add_argument("--load-note", default=None,
                        help="what else ran on the machine (goes into the Markdown)")
    args = parser.parse_args(argv)
    command = "HF_HUB_OFFLINE=1 python experiments/cpu_budget.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    command = command.rstrip()

    overrides: dict[str, dict] = {}
    for item in args.param:
        key, _, value = item.partition("=")
        strategy, _, name = key.partition(".")
        try:
            overrides.setdefault(strategy, {})[name] = json.loads(value)
        except json.JSONDecodeError:
            overrides.setdefault(strategy, {})[name] = value

    t0 = time.perf_counter()
    import setfit  # noqa: F401  (torch, transformers, sentence-transformers with it)
    import torch
    import transformers  # noqa: F401
    import_seconds = time.perf_counter() - t0

    data_dir = Path(args.data_dir or os.environ.get("ISSUE_LABELER_DATA") or ROOT.parent / "shared" / "data")
    data_file, label_map = DATASETS[args.dataset]
    prepared = prepare(data_dir / data_file, ROOT / label_map)
    texts, label_sets = prepared.texts(), prepared.label_sets()
    train, valid, test, note = split(prepared, args.n, args.seed)
    exclusive, _ = prepared.label_map.exclusive_groups(label_sets)
    data = {"dataset": args.dataset, "texts": texts, "label_sets": label_sets, "labels": prepared.labels,
            "descriptions": prepared.label_map.descriptions, "exclusive": exclusive,
            "train": train, "valid": valid, "test": test}
    result = {
        "dataset": f"{args.dataset} ({data_file}, {label_map})",
        "split": f"split_indices seed {args.seed}; training on {note}",
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {**machine(), "torch_threads": torch.get_num_threads()},
        "limit_seconds": args.limit,
        "import_seconds": round(import_seconds, 2),
        "load_note": args.load_note or "not recorded",
        "overrides": overrides,
        "load_average_start": load_average(),
        "results": [],
    }
    print(f"{len(texts)} labelled {args.dataset} issues, {len(prepared.labels)} labels; training on {note}; "
          f"validation {len(valid)}, test {len(test)}; imports {import_seconds:.0f} s; "
          f"load average {result['load_average_start']}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in [s for s in args.strategies.split(",") if s]:
        result["results"].append(run_one(name, data, import_seconds, args.limit, overrides.get(name)))
        out.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    out.with_suffix(".md").write_text(markdown(result, command))
    print("\n" + "\n".join(f"{'PASS' if r['pass'] else 'FAIL'}: {r['strategy']} {r['seconds_to_bundle']:.0f} s"
                           + (f"; {'PASS' if r['f1_pass'] else 'FAIL'}: micro F1 {r['micro_vs_reference']:+.3f} "
                              "vs the reference" if "f1_pass" in r else "")
                           for r in result["results"]))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
