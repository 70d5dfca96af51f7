"""Prediction latency of served bundles on a new issue (embedding cache off), per issue, one
issue at a time and in a batch of 64, for the strategies of issue #7 on the hf-datasets seed-0
split (slice all). Run it on an otherwise idle machine: timings under load mean little, and
they depend on the CPU (recorded in the output's ``machine``): int8 pays on AVX-512 CPUs only.

    python experiments/latency.py [--data-dir ../shared/data] [--out results/latency-<machine>.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labeler.bundle import Bundle  # noqa: E402
from labeler.encoders import cache_disabled  # noqa: E402
from labeler.pipeline import prepare  # noqa: E402
from labeler.splits import split_indices  # noqa: E402

sys.path.insert(0, str(ROOT / "experiments"))
from benchmark import machine  # noqa: E402

CHEAP = [["naive_bayes", {}], ["linear", {"features": "tfidf"}], ["linear", {"features": "embedding"}], ["knn", {}],
         ["linear", {"features": "both"}]]
#: the same candidates with the encoder reading 64 tokens instead of 128
CHEAP_64 = [[name, {**params, "max_length": 64} if name == "knn" or params.get("features") in ("embedding", "both") else params]
            for name, params in CHEAP]
#: the same candidates with linear's encoder quantized to int8 (knn's stays float, as in the benchmark row)
CHEAP_INT8 = [[name, {**params, "quantize": True} if params.get("features") in ("embedding", "both") else params]
              for name, params in CHEAP]
CONFIGS = {
    "linear [tfidf]": ("linear", {}),
    "linear [both]": ("linear", {"features": "both"}),
    "linear [both, 64 tokens]": ("linear", {"features": "both", "max_length": 64}),
    "linear [both, int8]": ("linear", {"features": "both", "quantize": True}),
    "auto [cpu]": ("auto", {"candidates": CHEAP}),
    "auto [cpu, 64 tokens]": ("auto", {"candidates": CHEAP_64}),
    "auto [cpu, int8]": ("auto", {"candidates": CHEAP_INT8}),
    "auto [cpu, latency_ms=20]": ("auto", {"candidates": CHEAP, "latency_ms": 20}),
    # what `train` serves by default on a machine without CUDA whose CPU has AVX-512 (the
    # benchmark's "default, int8"): the cheap candidates with int8 encoder members, rules for
    # micro+macro; elsewhere quantize=auto is float, as in "auto [cpu]"
    "auto [default, int8]": ("auto", {"quantize": True}, "micro+macro"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("ISSUE_LABELER_DATA") or str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "latency.json"))
    args = parser.parse_args()
    prepared = prepare(Path(args.data_dir) / "hf-datasets-issues.jsonl.gz", ROOT / "experiments/labels/hf-datasets.yml")
    texts, sets = prepared.texts(), prepared.label_sets()
    parts = split_indices(prepared.y(), seed=0)
    pick = lambda idx: ([texts[i] for i in idx], [sets[i] for i in idx])  # noqa: E731
    train, valid, test = pick(parts["train"]), pick(parts["valid"]), pick(parts["test"])
    results = {"machine": {**machine(), "load_average": os.getloadavg()}, "rows": {}}
    for name, (strategy, params, *objective) in CONFIGS.items():
        bundle = Bundle.train(strategy, *train, labels=prepared.labels, valid=valid, params=params,
                              objective=objective[0] if objective else "micro")
        sample = test[0][:64]
        with cache_disabled():
            bundle.predict_proba(sample[:2])  # load models once
            started = time.perf_counter()
            bundle.predict_proba(sample)
            batch = 1000 * (time.perf_counter() - started) / len(sample)
            started = time.perf_counter()
            for text in sample[:16]:
                bundle.predict_proba([text])
            single = 1000 * (time.perf_counter() - started) / 16
        scores = bundle.evaluate(*test)
        chosen = bundle.strategy.fitted_info.get("chosen", strategy)
        results["rows"][name] = {"chosen": chosen, "ms_per_issue_batch": round(batch, 2),
                                 "ms_per_issue_one_at_a_time": round(single, 2),
                                 "test_micro_f1": round(scores["micro_f1"], 4), "test_macro_f1": round(scores["macro_f1"], 4)}
        print(f"{name}: {chosen}; {batch:.1f} ms/issue in a batch of 64, {single:.1f} ms one at a time; "
              f"test micro {scores['micro_f1']:.3f} macro {scores['macro_f1']:.3f}", flush=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out} (load average {results['machine']['load_average']})")


if __name__ == "__main__":
    main()
