#!/usr/bin/env bash
# Issue #9: the low-data study's augmentation and domain-adaptation rows, beside the rows that
# exist. Resumable (rows already in experiments/results/<dataset>.jsonl are skipped). Steps,
# cheapest first; STEPS="1 2" runs a subset; DATASET=sklearn runs them on sklearn.
#   0  the adapted encoder: masked-LM training of MiniLM into .encoders/. hf-datasets: one
#      encoder on the unlabelled pool (never a labelled issue, so never an evaluation issue of
#      any seed). sklearn (a pool of 324 only): one encoder per seed, on that seed's training
#      issues and the pool (`issue-labeler split --seed N`, then `adapt` on the split directory,
#      which leaves its valid and test issues out)
#   1  naive_bayes + synonym augmentation (WordNet: `issue-labeler augment-setup` first)
#   2  linear (TF-IDF) + synonym augmentation
#   3  knn and linear[embedding] on the adapted encoder
#   4  finetune from the adapted encoder (the book's "domain-adapted BERT"), CPU-cut settings
#   5  naive_bayes + contextual augmentation with the adapted encoder's masked LM (the book's row)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATASET=${DATASET:-hf-datasets}
SEEDS=${SEEDS:-0-4}
SLOW_SEEDS=${SLOW_SEEDS:-0-2}  # finetune and contextual augmentation: 3 seeds on 2 CPU cores
B="$PY experiments/benchmark.py --dataset $DATASET"
expand() { # 0-2 -> 0 1 2; 0,3 -> 0 3
  local out=() part
  for part in ${1//,/ }; do
    if [[ $part == *-* ]]; then out+=($(seq "${part%-*}" "${part#*-}")); else out+=("$part"); fi
  done
  echo "${out[@]}"
}
if [ "$DATASET" = hf-datasets ]; then
  ENC=${ENC:-.encoders/hf-datasets-minilm}
  # one encoder for every seed: a command per step
  per_seed() { local seeds=$1; shift; "$@" --seeds "$seeds"; }
  encoder() { echo "$ENC"; }
  ADAPTED_SEEDS=$SEEDS  # the cheap adapted rows (step 3): every seed
else
  # sklearn: an encoder per seed, so a benchmark command per seed
  per_seed() { local seeds=$1 seed; shift; for seed in $(expand "$seeds"); do SEED=$seed "$@" --seeds "$seed"; done; }
  encoder() { echo ".encoders/$DATASET-minilm-seed$SEED"; }
  ADAPTED_SEEDS=$SLOW_SEEDS  # the seeds step 0 made encoders for
fi
adapt() { # $1: output directory, the rest: data
  local out=$1; shift
  [ -f "$out/adapt.json" ] || .venv/bin/issue-labeler adapt "$@" -o "$out" --epochs "${ADAPT_EPOCHS:-1}" \
    --budget "${ADAPT_BUDGET:-1500}" --heldout "${ADAPT_HELDOUT:-300}"
}
with_encoder() { # runs "$@" with @ENC@ replaced by this seed's encoder
  local enc args=() a
  enc=$(encoder)
  for a in "$@"; do args+=("${a//@ENC@/$enc}"); done
  "${args[@]}"
}
for step in ${STEPS:-0 1 2 3 4 5}; do
  case $step in
    0) if [ "$DATASET" = hf-datasets ]; then
         [ -f "$ENC/adapt.json" ] || .venv/bin/issue-labeler split ../shared/data/hf-datasets-issues.jsonl.gz \
           --label-map experiments/labels/hf-datasets.yml -o .encoders/hf-split
         adapt "$ENC" .encoders/hf-split/unlabelled.jsonl
       else
         for seed in $(expand "$SLOW_SEEDS"); do
           split=.encoders/$DATASET-split-seed$seed
           [ -d "$split" ] || .venv/bin/issue-labeler split "../shared/data/$DATASET-issues.jsonl.gz" \
             --label-map "experiments/labels/$DATASET.yml" --seed "$seed" -o "$split"
           ADAPT_HELDOUT=${ADAPT_HELDOUT:-100} adapt ".encoders/$DATASET-minilm-seed$seed" "$split"
         done
       fi ;;
    1) $B --strategies naive_bayes --seeds "$SEEDS" --augment synonym:1 ;;
    2) $B --strategies linear --seeds "$SEEDS" --variant tfidf --augment synonym:1 ;;
    3) per_seed "$ADAPTED_SEEDS" with_encoder $B --strategies knn --param 'knn.model="@ENC@"' --variant adapted
       per_seed "$ADAPTED_SEEDS" with_encoder $B --strategies linear --param 'linear.features="embedding"' \
         --param 'linear.model="@ENC@"' --variant embedding-adapted ;;
    4) per_seed "$SLOW_SEEDS" with_encoder $B --strategies finetune --param 'finetune.model="@ENC@"' \
         --param finetune.epochs=5 --param finetune.max_seconds=240 --param finetune.min_steps=80 --variant adapted-cpu-cut ;;
    5) per_seed "$SLOW_SEEDS" with_encoder $B --strategies naive_bayes --augment contextual:1 --augment-model @ENC@ ;;
  esac
done
$B --report
