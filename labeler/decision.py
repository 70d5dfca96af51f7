"""Deciding labels from scores, separate from scoring.

A :class:`DecisionRule` turns a score matrix into a 0/1 label matrix in one of three ways:

* ``top_k``: the k best-scoring labels of each issue (the book's zero-shot uses top-1);
* ``threshold``: every label whose score reaches one global threshold;
* ``per_label``: every label whose score reaches that label's own threshold.

On top of any of them, **exclusive groups** (``exclusive=[["bug", "enhancement", "question"]]``)
keep at most one label of each group: the best-scoring one that the rule chose.

:func:`tune` picks a rule on validation scores for an **objective**:

* ``micro`` / ``macro`` / ``micro+macro``: the rule (top-k, one threshold, or per-label
  thresholds) with the best validation micro F1, macro F1, or mean of the two. Per-label
  thresholds are the F1-best cut of each label, placed in the middle of the widest gap
  between validation scores (not at its edge), and shrunk towards the global threshold in
  proportion to how few validation positives the label has (``shrink``: a label with
  ``shrink`` positives sits half-way), so a label seen twice in validation does not get a
  threshold fitted to those two issues.
* ``precision=P``: each label gets the lowest threshold whose validation precision, as a
  Wilson lower bound (``z`` = 1.28, one-sided 90%), reaches P; a label that cannot reach P
  keeps its F1 threshold and is marked **suggest-only**.

Whatever the objective, the rule keeps each label's **precision curve** on validation (the
Wilson lower bound of precision at each candidate threshold), so a caller with its own
precision target (the bot's per-repository ``precision``) can ask :meth:`DecisionRule.classify`
which chosen labels are confident enough to *apply* and which only to *suggest*. Rules are
stored as JSON in bundles, with per-label validation threshold, precision, recall and support.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from labeler.errors import ParameterError
from labeler.metrics import f1_scores

KINDS = ("top_k", "threshold", "per_label")
#: what ``Bundle.train(decision=...)`` and ``issue-labeler train --decision`` take
DECISIONS = ("auto", *KINDS)
#: decisions of :meth:`DecisionRule.classify`
BELOW, SUGGEST, APPLY = 0, 1, 2
DECISION_NAMES = {BELOW: "below", SUGGEST: "suggest", APPLY: "apply"}
#: one-sided 90% normal quantile for the Wilson lower bound of precision
WILSON_Z = 1.2816


@dataclass(frozen=True)
class Objective:
    """What decision rules are tuned for: ``micro``, ``macro``, ``micro+macro`` (their mean)
    or ``precision=P``."""

    kind: str = "micro"
    target: float | None = None

    @classmethod
    def parse(cls, text: "str | Objective | None") -> "Objective":
        if isinstance(text, Objective):
            return text
        text = (text or "micro").strip().lower().replace(" ", "")
        if text in ("micro", "macro", "micro+macro"):
            return cls(text)
        name, sep, value = text.partition("=")
        if name == "precision" and sep:
            try:
                target = float(value)
            except ValueError:
                target = -1.0
            if 0.0 < target <= 1.0:
                return cls("precision", target)
            raise ValueError(f"objective precision=P needs 0 < P <= 1, got {value!r}")
        raise ValueError(f"unknown objective {text!r}; use micro, macro, micro+macro or precision=P (e.g. precision=0.9)")

    def __str__(self) -> str:
        return self.kind if self.target is None else f"{self.kind}={self.target:g}"

    def value(self, micro: float, macro: float) -> float:
        """The F1 this objective is judged by: macro for ``macro``, the mean for
        ``micro+macro``, else micro (``precision=P`` reaches its target label by label and is
        compared on micro F1)."""
        if self.kind == "macro":
            return macro
        if self.kind == "micro+macro":
            return (micro + macro) / 2
        return micro



def wilson_lower(tp: np.ndarray | float, n: np.ndarray | float, z: float = WILSON_Z) -> np.ndarray:
    """Wilson score lower bound of a proportion ``tp / n`` (0 where ``n`` is 0)."""
    tp = np.asarray(tp, dtype=float)
    n = np.asarray(n, dtype=float)
    safe = np.maximum(n, 1.0)
    p = tp / safe
    centre = p + z * z / (2 * safe)
    spread = z * np.sqrt(p * (1 - p) / safe + z * z / (4 * safe * safe))
    return np.where(n > 0, (centre - spread) / (1 + z * z / safe), 0.0)


def _logit(p: np.ndarray | float) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def _sigmoid(z: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=float)))


def best_f1_cut(scores: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``(threshold, F1)``: the cut of ``scores`` with the best F1 against 0/1 ``y``, placed
    in the middle (in log-odds) of the widest gap between scores among the best cuts."""
    scores = np.asarray(scores, dtype=float).ravel()
    y = np.asarray(y).ravel().astype(bool)
    if not y.any() or scores.size == 0:
        return 0.5, 0.0
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], y[order]
    tp = np.cumsum(t)
    f1 = 2 * tp / (np.arange(1, s.size + 1) + t.sum())
    cut_ok = np.r_[s[:-1] > s[1:], True]  # a cut between equal scores is impossible
    f1 = np.where(cut_ok, f1, -1.0)
    best = float(f1.max())
    ls = _logit(s)
    below = np.r_[ls[1:], ls[-1] - 2.0]  # under the lowest score: 2 log-odds lower
    candidates = np.flatnonzero(f1 >= best - 1e-12)
    i = candidates[int(np.argmax(ls[candidates] - below[candidates]))]
    if i == s.size - 1 and t.mean() <= 0.5:
        # "everything is positive" only wins when the scores carry no information (a label
        # never seen in training scores a constant): choose nothing instead
        return float(_sigmoid(ls[0] + 2.0)), 0.0
    return float(_sigmoid((ls[i] + below[i]) / 2)), best


def precision_curve(scores: np.ndarray, y: np.ndarray, z: float = WILSON_Z) -> list[list[float]]:
    """``[[threshold, precision lower bound, recall], ...]`` at each validation score of a
    positive issue, highest threshold first (the points where precision can change for the
    better)."""
    scores = np.asarray(scores, dtype=float).ravel()
    y = np.asarray(y).ravel().astype(bool)
    if not y.any():
        return []
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], y[order]
    tp, n = np.cumsum(t), np.arange(1, s.size + 1)
    last = np.r_[s[:-1] > s[1:], True]  # all issues tied at a score go together
    keep = np.flatnonzero(last & t)
    lb = wilson_lower(tp[keep], n[keep], z)
    return [[float(s[i]), round(float(b), 4), round(float(tp[i] / t.sum()), 4)] for i, b in zip(keep, lb)]


def threshold_for_precision(curve: list[list[float]], target: float) -> float | None:
    """The lowest threshold of ``curve`` whose precision lower bound reaches ``target``."""
    reached = [point[0] for point in curve if point[1] >= target - 1e-12]
    return min(reached) if reached else None


@dataclass
class DecisionRule:
    kind: str = "threshold"
    k: int = 1
    threshold: float = 0.5
    #: per_label: a label without its own threshold uses ``threshold``
    thresholds: dict[str, float] = field(default_factory=dict)
    #: groups of mutually exclusive labels: at most one label of a group is chosen
    exclusive: list[list[str]] = field(default_factory=list)
    #: what the rule was tuned for (``micro``, ``macro``, ``precision=P``)
    objective: str = "micro"
    #: labels that cannot reach the precision objective on validation: never applied, only suggested
    suggest_only: list[str] = field(default_factory=list)
    #: per label, on validation: ``[[threshold, precision lower bound, recall], ...]``
    curves: dict[str, list[list[float]]] = field(default_factory=dict)
    #: per label, on validation under this rule: threshold, precision, recall, support
    stats: dict[str, dict[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown decision rule {self.kind!r}; use one of {', '.join(KINDS)}")
        if self.k < 1:
            raise ValueError("top_k needs k >= 1")
        Objective.parse(self.objective)

    # -- deciding ------------------------------------------------------------------------
    def decide(self, scores: np.ndarray, labels: Sequence[str]) -> np.ndarray:
        """0/1 matrix of the labels chosen for each row of ``scores`` (applied or suggested),
        at most one per exclusive group."""
        scores = np.asarray(scores, dtype=float)
        if scores.ndim != 2 or scores.shape[1] != len(labels):
            raise ValueError(f"scores of shape {scores.shape} do not match {len(labels)} labels")
        if self.kind == "top_k":
            out = np.zeros_like(scores, dtype=np.int8)
            if scores.shape[0]:
                k = min(self.k, scores.shape[1])
                top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
                np.put_along_axis(out, top, 1, axis=1)
        elif self.kind == "threshold":
            out = (scores >= self.threshold).astype(np.int8)
        else:
            out = (scores >= self.cutoffs(labels)[None, :]).astype(np.int8)
        return exclusive_filter(out, scores, labels, self.exclusive)

    def cutoffs(self, labels: Sequence[str]) -> np.ndarray:
        return np.array([self.thresholds.get(label, self.threshold) for label in labels])

    def apply_thresholds(self, labels: Sequence[str], precision: float | None = None) -> list[float | None]:
        """Per label, the lowest score at which a chosen label is *applied* (None: suggest only).

        ``precision=None`` uses the rule's own objective: with ``precision=P`` every chosen
        label but the suggest-only ones is applied; with micro/macro every chosen label is.
        A number asks for that precision on validation (Wilson lower bound)."""
        out: list[float | None] = []
        for label in labels:
            if precision is None:
                out.append(None if label in self.suggest_only else 0.0)
            elif label not in self.curves:
                out.append(None)  # never seen positive in validation: nothing proves precision
            else:
                out.append(threshold_for_precision(self.curves[label], precision))
        return out

    def classify(self, scores: np.ndarray, labels: Sequence[str], precision: float | None = None) -> np.ndarray:
        """A matrix of :data:`APPLY`, :data:`SUGGEST` or :data:`BELOW` per issue and label:
        chosen labels are applied when they reach the precision target (see
        :meth:`apply_thresholds`), else suggested."""
        scores = np.asarray(scores, dtype=float)
        chosen = self.decide(scores, labels).astype(bool)
        cut = np.array([np.inf if t is None else t for t in self.apply_thresholds(labels, precision)])
        out = np.where(chosen, SUGGEST, BELOW).astype(np.int8)
        out[chosen & (scores >= cut[None, :])] = APPLY
        return out

    # -- persistence -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DecisionRule":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    def describe(self) -> str:
        if self.kind == "top_k":
            text = f"top-{self.k}"
        elif self.kind == "threshold":
            text = f"score >= {self.threshold:.3f}"
        else:
            text = f"per-label thresholds (default {self.threshold:.3f})"
        if self.objective != "micro":
            text += f" for {self.objective}"
        if self.suggest_only:
            text += f", {len(self.suggest_only)} label(s) suggest-only"
        if self.exclusive:
            text += f", {len(self.exclusive)} exclusive group(s)"
        return text


def exclusive_filter(chosen: np.ndarray, scores: np.ndarray, labels: Sequence[str],
                     groups: Sequence[Sequence[str]]) -> np.ndarray:
    """Keep, in each exclusive group, only the best-scoring chosen label of each row."""
    if not groups or chosen.shape[0] == 0:
        return chosen
    chosen = chosen.copy()
    position = {label: j for j, label in enumerate(labels)}
    for group in groups:
        cols = [position[label] for label in group if label in position]
        if len(cols) < 2:
            continue
        block = np.where(chosen[:, cols] > 0, scores[:, cols], -np.inf)
        best = np.argmax(block, axis=1)
        keep = np.zeros_like(chosen[:, cols])
        rows = np.flatnonzero(np.isfinite(block.max(axis=1)))
        keep[rows, best[rows]] = 1
        chosen[:, cols] = keep
    return chosen


def check_groups(groups: Sequence[Sequence[str]] | None, labels: Sequence[str]) -> list[list[str]]:
    """Validate exclusive groups against the label set (unknown names are an error)."""
    out = []
    known = set(labels)
    seen: set[str] = set()
    for group in groups or []:
        group = [str(label) for label in group]
        unknown = [label for label in group if label not in known]
        if unknown:
            raise ValueError(f"exclusive group {group} names labels that are not in the label set: {unknown}")
        twice = seen.intersection(group)
        if twice:
            raise ValueError(f"label(s) {sorted(twice)} are in two exclusive groups")
        seen.update(group)
        if len(group) >= 2:
            out.append(group)
    return out


def _per_label_f1(scores: np.ndarray, y: np.ndarray, labels: Sequence[str], global_t: float,
                  shrink: float) -> dict[str, float]:
    thresholds: dict[str, float] = {}
    for j, label in enumerate(labels):
        positives = int(y[:, j].sum())
        if positives == 0:
            continue  # nothing to learn from: keep the global threshold
        t, _ = best_f1_cut(scores[:, j], y[:, j])
        if shrink > 0:
            t = float(_sigmoid((positives * _logit(t) + shrink * _logit(global_t)) / (positives + shrink)))
        thresholds[label] = t
    return thresholds


def _label_stats(rule: DecisionRule, scores: np.ndarray, y: np.ndarray, labels: Sequence[str]) -> dict:
    pred = rule.decide(scores, labels).astype(bool)
    truth = y.astype(bool)
    cut = rule.cutoffs(labels)
    stats = {}
    for j, label in enumerate(labels):
        tp, n_pred, support = int((pred[:, j] & truth[:, j]).sum()), int(pred[:, j].sum()), int(truth[:, j].sum())
        stats[label] = {"threshold": round(float(cut[j]), 4) if rule.kind != "top_k" else None,
                        "precision": round(tp / n_pred, 4) if n_pred else 0.0,
                        "precision_lower": round(float(wilson_lower(tp, n_pred)), 4),
                        "recall": round(tp / support, 4) if support else 0.0, "support": support}
    return stats


def tune(scores: np.ndarray, y_true: np.ndarray, labels: Sequence[str], kind: str = "auto",
         max_k: int = 3, *, objective: "str | Objective" = "micro",
         exclusive: Sequence[Sequence[str]] | None = None, shrink: float = 5.0,
         tie: float = 0.005) -> tuple[DecisionRule, float]:
    """Choose a rule on validation scores; returns ``(rule, validation F1 for the objective)``
    (micro F1 for ``precision=P``).

    ``kind="auto"`` tries top-k (k = 1..max_k), one global threshold and per-label thresholds
    and keeps the best; rules within ``tie`` of the best count as equal and the one with the
    better other F1 (macro for micro, micro for macro and micro+macro) wins, then the simpler rule. ``precision=P`` always
    makes per-label thresholds. ``exclusive`` groups are applied while tuning, so the rule is
    chosen for the decisions it will really make."""
    scores = np.asarray(scores, dtype=float)
    y_true = np.asarray(y_true)
    if scores.shape[0] == 0:
        raise ValueError("cannot tune a decision rule on zero validation issues")
    if kind not in (*KINDS, "auto"):
        raise ValueError(f"unknown decision rule {kind!r}; use auto or one of {', '.join(KINDS)}")
    goal = Objective.parse(objective)
    groups = check_groups(exclusive, labels)
    common = {"exclusive": groups, "objective": str(goal)}
    global_t, _ = best_f1_cut(scores, y_true)
    candidates: list[DecisionRule] = []
    if goal.kind == "precision":
        f1_cuts = _per_label_f1(scores, y_true, labels, global_t, shrink)
        thresholds, suggest_only = {}, []
        for j, label in enumerate(labels):
            t = threshold_for_precision(precision_curve(scores[:, j], y_true[:, j]), goal.target)
            if t is None:
                suggest_only.append(label)
                t = f1_cuts.get(label, global_t)
            thresholds[label] = t
        candidates.append(DecisionRule("per_label", threshold=global_t, thresholds=thresholds,
                                       suggest_only=suggest_only, **common))
    else:
        if kind in ("top_k", "auto"):
            candidates += [DecisionRule("top_k", k=k, **common) for k in range(1, min(max_k, len(labels)) + 1)]
        if kind in ("threshold", "auto"):
            candidates.append(DecisionRule("threshold", threshold=global_t, **common))
        if kind in ("per_label", "auto"):
            candidates.append(DecisionRule("per_label", threshold=global_t,
                                           thresholds=_per_label_f1(scores, y_true, labels, global_t, shrink), **common))
    scored = []
    for rule in candidates:
        micro, macro = f1_scores(y_true, rule.decide(scores, labels))
        scored.append((rule, goal.value(micro, macro), micro if goal.kind in ("macro", "micro+macro") else macro))
    best = max(value for _, value, _ in scored)
    # among the rules within `tie` of the best, the one best on the other F1 (the first of
    # equals: the simpler rule)
    rule, value, _ = max((c for c in scored if c[1] >= best - tie), key=lambda c: c[2])
    rule.curves = {label: precision_curve(scores[:, j], y_true[:, j]) for j, label in enumerate(labels)
                   if y_true[:, j].any()}
    rule.stats = _label_stats(rule, scores, y_true, labels)
    return rule, value


def default_rule(needs_training: bool, decision: str = "auto", exclusive: Sequence[Sequence[str]] | None = None,
                 labels: Sequence[str] = ()) -> DecisionRule:
    """The rule used when there is no validation data to tune one: ``auto`` means a 0.5
    threshold, or top-1 for strategies that score without training (zero-shot)."""
    groups = check_groups(exclusive, labels) if labels else [list(g) for g in exclusive or []]
    if decision == "auto":
        kind = {"kind": "threshold", "threshold": 0.5} if needs_training else {"kind": "top_k", "k": 1}
        return DecisionRule(**kind, exclusive=groups)
    return DecisionRule(decision, exclusive=groups)


def check_decision(kind: str) -> str:
    """``kind`` when it names a decision rule (or ``auto``); else a one-line
    :class:`~labeler.errors.ParameterError`, so a bad rule is caught before training."""
    if kind not in DECISIONS:
        raise ParameterError(f"unknown decision rule {kind!r}; use {', '.join(DECISIONS)}")
    return kind


def check_objective(text: "str | Objective") -> Objective:
    """:meth:`Objective.parse` with a one-line :class:`~labeler.errors.ParameterError`."""
    try:
        return Objective.parse(text)
    except ValueError as exc:
        raise ParameterError(str(exc)) from None


__all__ = ["APPLY", "BELOW", "DecisionRule", "Objective", "SUGGEST", "best_f1_cut", "check_groups",
           "default_rule", "exclusive_filter", "precision_curve", "threshold_for_precision", "tune",
           "check_decision", "check_objective", "wilson_lower"]
