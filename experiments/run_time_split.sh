#!/usr/bin/env bash
# Issue #9 point 4: the time-ordered variant of the benchmark (train on older issues, test on
# newer ones) for the strongest strategies on hf-datasets. Resumable like run_accuracy.sh;
# results in experiments/results/hf-datasets-time.{jsonl,md,png}.
#   bash experiments/run_time_split.sh            # SEEDS=0-4 AUTO_SEEDS=0-2 to change
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-0-2}  # 3 seeds: the split is one and the same, the seeds vary the training slices
AUTO_SEEDS=${AUTO_SEEDS:-0-2}  # auto fits five candidates per cell: 3 seeds on 2 CPU cores
CHEAP='[["naive_bayes",{}],["linear",{"features":"tfidf"}],["linear",{"features":"embedding"}],["knn",{}],["linear",{"features":"both"}]]'
B="$PY experiments/benchmark.py --dataset hf-datasets --split time"
$B --strategies naive_bayes,knn --seeds "$SEEDS"
$B --strategies linear --seeds "$SEEDS" --variant tfidf
$B --strategies linear --seeds "$SEEDS" --param linear.features='"both"' --variant both
$B --strategies auto --seeds "$AUTO_SEEDS" --param auto.candidates="$CHEAP" --variant cpu
$B --report
