"""Micro, macro and per-label precision/recall/F1 (scikit-learn, ``zero_division=0``)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.metrics import f1_score, precision_recall_fscore_support


def evaluate(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Scores of a 0/1 prediction matrix against the truth, as a JSON-ready dict with
    ``micro_f1``, ``macro_f1``, ``micro_precision``, ``micro_recall``, ``per_label`` (precision,
    recall, F1, support and how many issues were predicted to carry the label) and ``n``."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"shapes differ: truth {y_true.shape}, prediction {y_pred.shape}")
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0)
    mp, mr, mf, _ = precision_recall_fscore_support(y_true, y_pred, average="micro", zero_division=0)
    return {
        "n": int(y_true.shape[0]),
        "micro_f1": float(mf),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "micro_precision": float(mp),
        "micro_recall": float(mr),
        "per_label": {
            label: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i]),
                    "predicted": int(y_pred[:, i].sum())}
            for i, label in enumerate(labels)
        },
    }


def f1_scores(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float]:
    """``(micro F1, macro F1)`` of 0/1 matrices, as scikit-learn with ``zero_division=0``
    computes them, in plain NumPy (tuning calls this thousands of times)."""
    t = np.asarray(y_true).astype(bool)
    p = np.asarray(y_pred).astype(bool)
    tp = (t & p).sum(axis=0).astype(float)
    denom = t.sum(axis=0) + p.sum(axis=0)
    micro = 2 * tp.sum() / denom.sum() if denom.sum() else 0.0
    per_label = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(micro), float(per_label.mean()) if per_label.size else 0.0


def micro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Micro F1 alone (the tuning objective)."""
    return float(f1_score(y_true, y_pred, average="micro", zero_division=0))
