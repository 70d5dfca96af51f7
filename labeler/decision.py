"""Deciding labels from scores, separate from scoring.

A :class:`DecisionRule` turns a score matrix into a 0/1 label matrix in one of three ways:

* ``top_k``: the k best-scoring labels of each issue (the book's zero-shot uses top-1);
* ``threshold``: every label whose score reaches one global threshold;
* ``per_label``: every label whose score reaches that label's own threshold.

:func:`tune` picks the parameters of a rule on validation data (micro F1), and
``kind="auto"`` picks the best of the three. Rules are stored as JSON in bundles.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from labeler.errors import ParameterError
from labeler.metrics import micro_f1

KINDS = ("top_k", "threshold", "per_label")
#: what ``Bundle.train(decision=...)`` and ``issue-labeler train --decision`` take
DECISIONS = ("auto", *KINDS)
#: candidate thresholds for tuning: fine near 0 and 1 where calibrated-ish scores cluster
_GRID = np.unique(np.concatenate([np.linspace(0.01, 0.99, 99), [0.001, 0.005, 0.995, 0.999]]))


@dataclass
class DecisionRule:
    kind: str = "threshold"
    k: int = 1
    threshold: float = 0.5
    thresholds: dict[str, float] = field(default_factory=dict)
    #: per_label: a label never seen positive in validation falls back to the global threshold

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown decision rule {self.kind!r}; use one of {', '.join(KINDS)}")
        if self.k < 1:
            raise ValueError("top_k needs k >= 1")

    def decide(self, scores: np.ndarray, labels: Sequence[str]) -> np.ndarray:
        """0/1 matrix of the labels chosen for each row of ``scores``."""
        scores = np.asarray(scores, dtype=float)
        if scores.ndim != 2 or scores.shape[1] != len(labels):
            raise ValueError(f"scores of shape {scores.shape} do not match {len(labels)} labels")
        if self.kind == "top_k":
            out = np.zeros_like(scores, dtype=np.int8)
            if scores.shape[0]:
                k = min(self.k, scores.shape[1])
                top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
                np.put_along_axis(out, top, 1, axis=1)
            return out
        if self.kind == "threshold":
            return (scores >= self.threshold).astype(np.int8)
        cut = np.array([self.thresholds.get(label, self.threshold) for label in labels])
        return (scores >= cut[None, :]).astype(np.int8)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DecisionRule":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    def describe(self) -> str:
        if self.kind == "top_k":
            return f"top-{self.k}"
        if self.kind == "threshold":
            return f"score >= {self.threshold:.3f}"
        return f"per-label thresholds (default {self.threshold:.3f})"


def check_decision(kind: str) -> str:
    """``kind`` when it names a decision rule (or ``auto``); else a one-line
    :class:`~labeler.errors.ParameterError`, so a bad rule is caught before training."""
    if kind not in DECISIONS:
        raise ParameterError(f"unknown decision rule {kind!r}; use {', '.join(DECISIONS)}")
    return kind


def _best_threshold(scores: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    best = (0.5, -1.0)
    for t in _GRID:
        f = micro_f1(y, (scores >= t).astype(np.int8))
        if f > best[1] + 1e-12:
            best = (float(t), f)
    return best


def tune(scores: np.ndarray, y_true: np.ndarray, labels: Sequence[str], kind: str = "auto",
         max_k: int = 3) -> tuple[DecisionRule, float]:
    """Choose a rule's parameters on validation scores; returns ``(rule, validation micro F1)``.

    ``kind="auto"`` tries top-k (k = 1..max_k), one global threshold and per-label thresholds
    and keeps the best by micro F1 (ties go to the simpler rule, in that order).
    """
    scores = np.asarray(scores, dtype=float)
    y_true = np.asarray(y_true)
    if scores.shape[0] == 0:
        raise ValueError("cannot tune a decision rule on zero validation issues")
    if kind not in (*KINDS, "auto"):
        raise ValueError(f"unknown decision rule {kind!r}; use auto or one of {', '.join(KINDS)}")
    candidates: list[tuple[DecisionRule, float]] = []
    if kind in ("top_k", "auto"):
        for k in range(1, min(max_k, len(labels)) + 1):
            rule = DecisionRule("top_k", k=k)
            candidates.append((rule, micro_f1(y_true, rule.decide(scores, labels))))
    global_t, global_f = _best_threshold(scores, y_true)
    if kind in ("threshold", "auto"):
        candidates.append((DecisionRule("threshold", threshold=global_t), global_f))
    if kind in ("per_label", "auto"):
        thresholds: dict[str, float] = {}
        for j, label in enumerate(labels):
            col_true = y_true[:, j]
            if col_true.sum() == 0:
                continue  # nothing to learn from: keep the global threshold
            best_t, best_f = global_t, -1.0
            for t in _GRID:
                pred = (scores[:, j] >= t).astype(np.int8)
                tp = int((pred & col_true).sum())
                f = 2 * tp / max(int(pred.sum()) + int(col_true.sum()), 1)
                if f > best_f + 1e-12:
                    best_t, best_f = float(t), f
            thresholds[label] = best_t
        rule = DecisionRule("per_label", threshold=global_t, thresholds=thresholds)
        candidates.append((rule, micro_f1(y_true, rule.decide(scores, labels))))
    return max(candidates, key=lambda c: c[1])  # max keeps the first of equals
