#!/usr/bin/env bash
# Issue #9: the low-data study's augmentation and domain-adaptation rows on hf-datasets, beside
# the rows that exist. Resumable (rows already in experiments/results/hf-datasets.jsonl are
# skipped). Steps, cheapest first; STEPS="1 2" runs a subset.
#   0  the adapted encoder: masked-LM training of MiniLM on the unlabelled pool (never a
#      labelled issue, so never an evaluation issue of any seed), into .encoders/
#   1  naive_bayes + synonym augmentation (WordNet: `issue-labeler augment-setup` first)
#   2  linear (TF-IDF, the best single CPU strategy) + synonym augmentation
#   3  knn and linear[embedding] on the adapted encoder
#   4  finetune from the adapted encoder (the book's "domain-adapted BERT"), CPU-cut settings
#   5  naive_bayes + contextual augmentation with the adapted encoder's masked LM (the book's row)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-0-4}
SLOW_SEEDS=${SLOW_SEEDS:-0-2}  # finetune and contextual augmentation: 3 seeds on 2 CPU cores
ENC=${ENC:-.encoders/hf-datasets-minilm}
B="$PY experiments/benchmark.py --dataset hf-datasets"
for step in ${STEPS:-0 1 2 3 4 5}; do
  case $step in
    0) [ -f "$ENC/adapt.json" ] || {
         .venv/bin/issue-labeler split ../shared/data/hf-datasets-issues.jsonl.gz \
           --label-map experiments/labels/hf-datasets.yml -o .encoders/hf-split;
         .venv/bin/issue-labeler adapt .encoders/hf-split/unlabelled.jsonl -o "$ENC" --epochs 1 --budget 1500 --heldout 300; } ;;
    1) $B --strategies naive_bayes --seeds "$SEEDS" --augment synonym:1 ;;
    2) $B --strategies linear --seeds "$SEEDS" --variant tfidf --augment synonym:1 ;;
    3) $B --strategies knn --seeds "$SEEDS" --param knn.model="\"$ENC\"" --variant adapted
       $B --strategies linear --seeds "$SEEDS" --param linear.features='"embedding"' --param linear.model="\"$ENC\"" --variant embedding-adapted ;;
    4) $B --strategies finetune --seeds "$SLOW_SEEDS" --param finetune.model="\"$ENC\"" --param finetune.epochs=5 \
         --param finetune.max_seconds=240 --param finetune.min_steps=80 --variant adapted-cpu-cut ;;
    5) $B --strategies naive_bayes --seeds "$SLOW_SEEDS" --augment contextual:1 --augment-model "$ENC" ;;
  esac
done
$B --report
