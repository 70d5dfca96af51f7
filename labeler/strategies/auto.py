"""``auto``: fit candidate strategies cheapest first within a time budget, then serve the best
one or an ensemble of them, whichever validates better. What ``train`` uses unless told
otherwise.

How it decides:

1. **Validation.** With a validation set, candidates are fitted on the training data and
   scored on validation. Without one, a quarter of the training data is held out (iterative
   stratification) for the same purpose, and the served members are refitted on all of it at
   the end when the budget allows.
2. **Candidates, cheapest first** (``candidates``): by default naive Bayes, ``linear`` on
   TF-IDF, ``linear`` on frozen embeddings, ``knn``, ``linear`` on both, then ``setfit`` (its
   contrastively tuned encoder under a ``linear`` head, ``head="linear"``, 200 steps reading
   the first 64 tokens: 2 to 3 minutes on 2 CPU cores, faster under bf16 autocast where the CPU
   computes bf16 natively), and ``finetune`` where torch sees a CUDA GPU (``transformers``: on
   2 CPU cores it takes ten times as long as the rest and gained nothing). The encoder members
   run int8 on a CPU with AVX-512
   (``quantize="auto"``; ``false`` for float, ``true`` for int8 on any CPU): int8 costs about
   .01 macro F1 on average; it encoded about twice as fast on an AVX-512 CPU and barely
   faster on an AVX2-only one, so they stay float there. Before each candidate the
   remaining budget is checked against what it is expected to cost; the transformer
   candidates get what is left as their own wall-clock budget (``max_seconds``) and stop
   cleanly there. A candidate that fails is recorded and skipped.
   ``latency_ms`` excludes members whose prediction (embedding cache off) is slower per issue.
3. **Ensembles**, fitted on validation scores only: ``mean`` (the average score of the best
   ``mean_top`` members) and ``stack`` (per label, a logistic regression over the members'
   log-odds for that label). The stack is fitted by ``folds``-fold cross-fitting on the
   validation set, so its validation scores (what the decision rule is tuned on, see
   :meth:`validation_scores`) are out-of-fold; the served stacker is refitted on all of it.
4. **Choice**: every single candidate and ensemble gets a decision rule tuned on its
   validation scores for ``objective`` (micro, macro, precision=P, or micro+macro: the mean of the
   two, the default as in ``train``), and is ranked by
   ``rank_by``: by default the mean of its validation micro and macro F1, so that a choice a
   hair better on micro F1 does not cost the rare labels (5 seeds, from 128 issues up: +.01 to
   .06 macro F1 for .004 to .010 less micro on hf-datasets and sklearn, experiments/README.md);
   ``rank_by="objective"`` ranks by the objective's F1 alone (micro F1 for precision=P). The
   best wins, a simpler one on a tie within ``tie``. ``fitted_info`` (the manifest's
   ``fitted``) lists every candidate with its validation micro/macro F1 and seconds, and says
   why the winner won.

Serving an ensemble, members that read the same encoder (same model and ``max_length``: the
defaults of ``linear`` and ``knn`` do) embed a new issue once between them
(:func:`labeler.encoders.shared_embeddings`).

Saved without pickles: each served member in its own directory (``member-0/``, ...) in its
strategy's own format, and the stacker's weights in ``stack.npz``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np

from pydantic import Field, field_validator

from labeler.decision import Objective, tune
from labeler.metrics import f1_scores
from labeler.strategies import get_strategy, register
from labeler.strategies.base import Explanation, Labelled, LabelSets, Metadata, Strategy, StrategyParams

log = logging.getLogger(__name__)

#: (name, params, expected seconds per 1,000 training issues on 2 CPU cores)
#: The encoder members' "quantize" is auto's own ``quantize`` parameter (default "auto": int8
#: where they run on a CPU with AVX-512, see AutoParams).
DEFAULT_CANDIDATES: list[list[Any]] = [
    ["naive_bayes", {}, 1],
    ["linear", {"features": "tfidf"}, 30],
    ["linear", {"features": "embedding", "quantize": "auto"}, 150],
    ["knn", {"quantize": "auto"}, 150],
    ["linear", {"features": "both", "quantize": "auto"}, 180],
    # SetFit's tuned encoder under linear (setfit head=linear) reading 64 tokens: .849 / .604 with
    # all of hf-datasets (5 seeds; 128 tokens: .851 / .601 in twice the time) against .836 / .599
    # for the frozen encoder; 110 s per training under bf16, 158 s in float32 on 2 Xeon cores
    ["setfit", {"head": "linear", "max_steps": 200, "max_length": 64}, 400],
    ["finetune", {}, 400],
]
#: transformer candidates are not started with less than this many seconds left
MIN_TRANSFORMER_SECONDS = 180
#: share of the remaining budget a transformer candidate may train for: the rest covers what its
#: own budget does not bound (loading the model, setfit's head, scoring the validation issues),
#: which took up to as long as the training itself on a loaded 2-core machine
TRANSFORMER_SHARE = 0.5
#: strategies whose parameters include a wall-clock budget of their own
BUDGETED = ("setfit", "finetune")


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _describe(name: str, params: dict) -> str:
    extra = ",".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "max_seconds")
    return f"{name}[{extra}]" if extra else name


class Stacker:
    """Per label, a logistic regression over the members' log-odds for that label; a label
    with fewer than ``min_positives`` positives in the data it is fitted on averages instead."""

    def __init__(self, n_labels: int, n_members: int, C: float = 1.0, min_positives: int = 3):
        self.C = C
        self.min_positives = min_positives
        self.coef = np.zeros((n_labels, n_members))
        self.intercept = np.zeros(n_labels)
        self.fitted = np.zeros(n_labels, dtype=bool)

    def fit(self, member_scores: np.ndarray, y: np.ndarray) -> "Stacker":
        """``member_scores``: (n_members, n_issues, n_labels)."""
        from sklearn.linear_model import LogisticRegression

        z = _logit(member_scores)
        for j in range(y.shape[1]):
            positives = int(y[:, j].sum())
            if positives < self.min_positives or positives == len(y):
                continue
            model = LogisticRegression(C=self.C, max_iter=1000)
            model.fit(z[:, :, j].T, y[:, j])
            self.coef[j] = model.coef_[0]
            self.intercept[j] = model.intercept_[0]
            self.fitted[j] = True
        return self

    def predict(self, member_scores: np.ndarray) -> np.ndarray:
        z = _logit(member_scores)  # (members, issues, labels)
        stacked = _sigmoid(np.einsum("mil,lm->il", z, self.coef) + self.intercept)
        mean = member_scores.mean(axis=0)
        return np.where(self.fitted[None, :], stacked, mean)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"coef": self.coef, "intercept": self.intercept, "fitted": self.fitted}

    @classmethod
    def from_arrays(cls, data) -> "Stacker":
        obj = cls(data["coef"].shape[0], data["coef"].shape[1])
        obj.coef, obj.intercept, obj.fitted = data["coef"], data["intercept"], data["fitted"].astype(bool)
        return obj


def _cross_fit(member_scores: np.ndarray, y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Out-of-fold stacked scores of the validation issues."""
    from sklearn.model_selection import KFold

    n = y.shape[0]
    out = member_scores.mean(axis=0)
    if n < 2 * folds:
        return out
    for train, test in KFold(n_splits=folds, shuffle=True, random_state=seed).split(np.arange(n)):
        stacker = Stacker(y.shape[1], member_scores.shape[0]).fit(member_scores[:, train], y[train])
        out[test] = stacker.predict(member_scores[:, test])
    return out


class AutoParams(StrategyParams):
    budget: float = Field(600.0, gt=0, description="seconds for fitting all candidates (on 2 CPU cores 600 fits the cheap ones and, with transformers on, one transformer on 1,000 issues)")
    candidates: list[str | list[Any]] | None = Field(
        None, description="[[name, params], ...] or [[name, params, seconds per 1,000 issues], ...], cheapest first; null: naive_bayes, linear (tfidf, embedding), knn, linear (both), setfit (its tuned encoder under a linear head), finetune")
    transformers: bool | Literal["auto"] = Field(
        "auto", description="include setfit and finetune when candidates is null: auto = setfit everywhere, finetune only where torch sees a CUDA GPU (on 2 CPU cores it takes ten times as long as the rest, for nothing, experiments/README.md); false: neither; true: both")
    quantize: bool | Literal["auto"] = Field(
        "auto", description="the default candidates' encoder members (linear on embeddings, knn): int8 (true), float (false), or int8 where they run on a CPU with AVX-512 (auto; int8 costs about .01 macro F1 on average, and about twice as fast as float on an AVX-512 CPU, barely faster on an AVX2-only one, experiments/README.md)")
    objective: str = Field("micro+macro", description="what each candidate's decision rule is tuned for: micro, macro, micro+macro (their mean) or precision=P")
    rank_by: Literal["micro+macro", "objective"] = Field(
        "micro+macro", description="candidates and ensembles are compared by the mean of validation micro and macro F1, or by the objective's F1 alone (micro F1 for precision=P)")
    ensembles: bool = Field(True, description="also try the mean of the best members and a stacked ensemble of all")
    mean_top: int = Field(3, ge=2, description="members in the mean ensemble")
    folds: int = Field(5, ge=2, description="cross-fitting folds of the stacker on validation")
    holdout: float = Field(0.25, gt=0, lt=1, description="share of training issues held out when no validation set is given")
    latency_ms: float | None = Field(None, gt=0, description="leave out members slower than this per issue (embedding cache off); null: no limit")
    tie: float = Field(0.002, ge=0, description="a simpler choice within this much validation F1 of the best wins")
    seed: int = Field(0, description="seed of the hold-out split and the stacker's folds")

    @field_validator("candidates")
    @classmethod
    def _candidates(cls, value):
        for item in value or []:
            name, params = (item, {}) if isinstance(item, str) else (item[0], item[1] if len(item) > 1 else {})
            try:
                get_strategy(str(name)).check_params(params)
            except KeyError as exc:
                raise ValueError(exc.args[0]) from None
        return value

    @field_validator("objective")
    @classmethod
    def _objective(cls, value: str) -> str:
        return str(Objective.parse(value))


@register
class Auto(Strategy):
    """Candidates cheapest first within a budget; the best one or an ensemble.

    Parameters: :class:`AutoParams`."""

    name = "auto"
    Params = AutoParams

    def __init__(self, labels: Sequence[str], descriptions: dict[str, str] | None = None, **params: Any):
        super().__init__(labels, descriptions, **params)
        self.members: list[Strategy] = []
        self.combine: str = "single"  # single | mean | stack
        self.stacker: Stacker | None = None
        self._valid_scores: np.ndarray | None = None
        #: (scores, label_sets) of the internal hold-out when no validation set was given
        self.held_out: tuple[np.ndarray, list] | None = None
        #: the clock the budget is measured with (tests replace it)
        self.clock: Callable[[], float] = time.monotonic

    # -- fitting ---------------------------------------------------------------------------
    def _candidates(self) -> list[tuple[str, dict, float, str | None]]:
        """``(name, params, expected seconds per 1,000 issues, why it is left out or None)``."""
        raw = self.params["candidates"] or DEFAULT_CANDIDATES
        leave_out = {}  # why the default list's transformers are not tried
        if not self.params["candidates"]:
            if self.params["transformers"] == "auto":
                from labeler.hf import pick_device

                if pick_device(None) == "cpu":
                    leave_out["finetune"] = "no CUDA GPU: transformers=auto leaves finetune to GPU machines"
            elif not self.params["transformers"]:
                leave_out = {name: "transformers=false" for name in BUDGETED}
        out = []
        for item in raw:
            if isinstance(item, str):
                item = [item, {}]
            name, params = item[0], dict(item[1] if len(item) > 1 else {})
            if not self.params["candidates"] and "quantize" in params:
                params["quantize"] = self.params["quantize"]
            get_strategy(name).check_params(params)  # an unknown name or bad parameter fails before any training
            cost = float(item[2]) if len(item) > 2 else dict((c[0], c[2]) for c in DEFAULT_CANDIDATES).get(name, 60)
            out.append((name, params, cost, leave_out.get(name)))
        return out

    def fit(self, texts: Sequence[str], label_sets: LabelSets, *, valid: Labelled | None = None,
            unlabelled: Sequence[str] | None = None, metadata: Metadata | None = None) -> "Auto":
        started = self.clock()
        budget = float(self.params["budget"])
        goal = Objective.parse(self.params["objective"])
        texts, label_sets = list(texts), list(label_sets)
        holdout = valid is None or not len(valid[0])
        if holdout:
            train_idx, valid_idx = self._holdout(label_sets)
            fit_texts = [texts[i] for i in train_idx]
            fit_metadata = [metadata[i] for i in train_idx] if metadata is not None else None
            fit_sets = [label_sets[i] for i in train_idx]
            valid = ([texts[i] for i in valid_idx], [label_sets[i] for i in valid_idx])
        else:
            fit_texts, fit_sets, fit_metadata = texts, label_sets, metadata
        y_valid = self.binarize(valid[1])
        report: list[dict[str, Any]] = []
        fitted: list[tuple[Strategy, np.ndarray, dict]] = []
        for name, params, cost, leave_out in self._candidates():
            entry: dict[str, Any] = {"candidate": _describe(name, params)}
            report.append(entry)
            if leave_out:
                entry["skipped"] = leave_out
                continue
            left = budget - (self.clock() - started)
            expected = cost * max(len(fit_texts), 100) / 1000
            if name in BUDGETED:
                if left < MIN_TRANSFORMER_SECONDS:
                    entry["skipped"] = f"budget: {left:.0f}s left, needs at least {MIN_TRANSFORMER_SECONDS}s"
                    continue
                own = get_strategy(name).check_params(params).get("max_seconds") or left  # its default budget
                params = {**params, "max_seconds": min(float(own), left * TRANSFORMER_SHARE)}
            elif expected > left:
                entry["skipped"] = f"budget: {left:.0f}s left, expected {expected:.0f}s"
                continue
            t0 = self.clock()
            try:
                member = get_strategy(name)(self.labels, self.descriptions, **params)
                # what an "auto" parameter resolved to (quantize=auto: true or false) shows in the name
                entry["candidate"] = _describe(name, {k: member.params.get(k, v) for k, v in params.items()})
                member.fit(fit_texts, fit_sets, valid=valid, unlabelled=unlabelled, metadata=fit_metadata)
                t1 = self.clock()
                scores = member.predict_proba(valid[0])
                ms = self._latency(member, valid[0])
            except Exception as exc:  # noqa: BLE001 - one candidate failing must not stop auto
                log.warning("auto: candidate %s failed: %s", entry["candidate"], exc)
                entry["failed"] = f"{type(exc).__name__}: {exc}"
                continue
            entry.update(self._score(scores, y_valid, goal), seconds=round(t1 - t0, 2), ms_per_issue=round(ms, 2))
            if name in BUDGETED:  # how far its own budget let it train
                info = member.fitted_info
                entry.update({k: info[k] for k in ("steps", "stopped_by_budget") if k in info},
                             max_seconds=round(float(params["max_seconds"]), 1))
            if self.params["latency_ms"] is not None and ms > float(self.params["latency_ms"]):
                entry["excluded"] = f"{ms:.1f} ms per issue > latency_ms {self.params['latency_ms']}"
                continue
            fitted.append((member, scores, entry))
        if not fitted:
            raise RuntimeError("auto: no candidate could be fitted: " + json.dumps(report))
        choice = self._choose(fitted, y_valid, goal, report)
        self._adopt(choice, fitted, y_valid)
        if holdout:
            self.held_out = (self._valid_scores, valid[1])
            self._refit(texts, label_sets, unlabelled, metadata, budget - (self.clock() - started))
        self.fitted_info = {"chosen": choice["name"], "why": choice["why"], "objective": str(goal),
                            "validation": "given" if not holdout else f"hold-out of {len(valid[0])} training issues",
                            "seconds": round(self.clock() - started, 2), "budget": budget, "candidates": report}
        return self

    @staticmethod
    def _latency(member: Strategy, texts: Sequence[str], sample: int = 8) -> float:
        """Milliseconds per issue to score new issues: a sample scored with the embedding
        cache off, as a new issue would be (wall clock, not the budget's clock). One issue is
        scored first, untimed: a member whose training found every embedding in the cache has
        not loaded its encoder yet, and a served bundle loads it once, not per issue."""
        from labeler.encoders import cache_disabled

        texts = list(texts[:sample])
        with cache_disabled():
            member.predict_proba(texts[:1])
            started = time.perf_counter()
            member.predict_proba(texts)
            return 1000 * (time.perf_counter() - started) / max(len(texts), 1)

    def _holdout(self, label_sets: list) -> tuple[np.ndarray, np.ndarray]:
        from labeler.splits import _split

        y = self.binarize(label_sets)
        n = len(label_sets)
        if n < 8:
            raise ValueError(f"auto needs a validation set or at least 8 training issues to hold some out, got {n}")
        order = np.random.RandomState(int(self.params["seed"])).permutation(n)
        np.random.seed(int(self.params["seed"]))
        rest, taken = _split(order, y[order], test_size=float(self.params["holdout"]))
        return np.sort(rest), np.sort(taken)

    @staticmethod
    def _score(scores: np.ndarray, y: np.ndarray, goal: Objective) -> dict[str, float]:
        labels = [str(j) for j in range(y.shape[1])]
        rule, _ = tune(scores, y, labels, objective=goal)
        micro, macro = f1_scores(y, rule.decide(scores, labels))
        return {"valid_micro_f1": round(micro, 4), "valid_macro_f1": round(macro, 4)}

    def _rank(self, goal: Objective) -> tuple[str, Callable[[dict], float]]:
        """What options are compared by (for the ``why``) and its value from a report entry."""
        if self.params["rank_by"] == "micro+macro":
            return "(micro + macro) / 2 F1", lambda e: (e["valid_micro_f1"] + e["valid_macro_f1"]) / 2
        what = {"macro": "macro F1", "micro+macro": "(micro + macro) / 2 F1"}.get(goal.kind, "micro F1")
        return what, lambda e: goal.value(e["valid_micro_f1"], e["valid_macro_f1"])

    def _choose(self, fitted, y, goal: Objective, report: list[dict]) -> dict[str, Any]:
        what, value = self._rank(goal)
        options = [{"name": e["candidate"], "combine": "single", "members": [i], "value": value(e),
                    "scores": s} for i, (_, s, e) in enumerate(fitted)]
        if self.params["ensembles"] and len(fitted) >= 2:
            ranked = sorted(range(len(fitted)), key=lambda i: -value(fitted[i][2]))
            top = sorted(ranked[: int(self.params["mean_top"])])
            mean_scores = np.mean([fitted[i][1] for i in top], axis=0)
            entry = {"candidate": "mean(" + " + ".join(fitted[i][2]["candidate"] for i in top) + ")",
                     **self._score(mean_scores, y, goal)}
            report.append(entry)
            options.append({"name": entry["candidate"], "combine": "mean", "members": top, "value": value(entry),
                            "scores": mean_scores})
            members = list(range(len(fitted)))
            stack = np.stack([fitted[i][1] for i in members])
            oof = _cross_fit(stack, y, int(self.params["folds"]), int(self.params["seed"]))
            entry = {"candidate": "stack(" + " + ".join(fitted[i][2]["candidate"] for i in members) + ")",
                     **self._score(oof, y, goal), "scores_are": "out-of-fold"}
            report.append(entry)
            options.append({"name": entry["candidate"], "combine": "stack", "members": members, "value": value(entry),
                            "scores": oof, "stack": stack})
        best = max(o["value"] for o in options)
        tie = float(self.params["tie"])
        # the simplest option within `tie` of the best: a single member, then the fewest members
        winner = min((o for o in options if o["value"] >= best - tie),
                     key=lambda o: (o["combine"] != "single", len(o["members"]), -o["value"]))
        runner = max((o for o in options if o is not winner), key=lambda o: o["value"], default=None)
        why = f"best validation {what} {winner['value']:.3f}"
        if runner is not None:
            why += f" (next: {runner['name']} {runner['value']:.3f})"
        if winner["value"] < best:
            why += f"; within {tie} of the best {best:.3f} and simpler"
        winner["why"] = why
        return winner

    def _adopt(self, choice: dict[str, Any], fitted, y_valid: np.ndarray) -> None:
        self.members = [fitted[i][0] for i in choice["members"]]
        self.combine = choice["combine"]
        self._valid_scores = choice["scores"]
        self.stacker = None
        if self.combine == "stack":
            # the served stacker is fitted on all validation scores; the out-of-fold scores
            # stay for tuning the decision rule
            self.stacker = Stacker(len(self.labels), len(self.members)).fit(choice["stack"], y_valid)

    def _refit(self, texts, label_sets, unlabelled, metadata, left: float) -> None:
        """After a hold-out: refit a single served member on all training data, when it is a
        cheap one and the budget allows (an ensemble's weights belong to the members it was
        fitted with, and a transformer's budget is spent)."""
        member = self.members[0]
        if self.combine != "single" or member.name in BUDGETED or left <= 0:
            return
        t0 = self.clock()
        fresh = get_strategy(member.name)(self.labels, self.descriptions, **member.params)
        fresh.fit(texts, label_sets, unlabelled=unlabelled, metadata=metadata)
        self.members = [fresh]
        log.info("auto: refitted %s on all %d issues in %.1fs", member.name, len(texts), self.clock() - t0)

    # -- scoring ---------------------------------------------------------------------------
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if not self.members:
            raise RuntimeError("auto is not fitted")
        if self.combine == "single":
            return self.members[0].predict_proba(texts)
        from labeler.encoders import shared_embeddings

        with shared_embeddings():  # members on the same encoder embed each issue once
            scores = np.stack([m.predict_proba(texts) for m in self.members])
        if self.combine == "mean":
            return scores.mean(axis=0)
        assert self.stacker is not None
        return self.stacker.predict(scores)

    def out_of_fold(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The served member's out-of-fold training scores, when a single member is served
        and a validation set was given (after a hold-out, the member refitted on all training
        issues would score the held-out ones twice)."""
        if self.combine != "single" or self.held_out is not None or not self.members:
            return None
        return self.members[0].out_of_fold()

    def validation_scores(self, texts: Sequence[str]) -> np.ndarray:
        """Out-of-fold scores for a stack (its weights were fitted on these issues)."""
        if self._valid_scores is not None and len(texts) == len(self._valid_scores):
            return self._valid_scores
        return self.predict_proba(texts)

    def explain(self, text: str) -> Explanation:
        """The served scores; the neighbours of a member that has them (knn); each member's
        own explanation under ``details["members"]``."""
        members = [m.explain(text) for m in self.members]
        scores = self.predict_proba([text])[0]
        return Explanation(scores=dict(zip(self.labels, map(float, scores))),
                           neighbours=[n for e in members for n in e.neighbours],
                           details={"combine": self.combine,
                                    "members": [{"strategy": m.name, **e.to_dict()} for m, e in zip(self.members, members)]})

    # -- persistence -----------------------------------------------------------------------
    def _save(self, directory: Path) -> None:
        for i, member in enumerate(self.members):
            member.save(directory / f"member-{i}")
        (directory / "auto.json").write_text(json.dumps({"combine": self.combine, "members": len(self.members)}))
        if self.stacker is not None:
            np.savez(directory / "stack.npz", **self.stacker.arrays())

    def _load(self, directory: Path) -> None:
        meta = json.loads((directory / "auto.json").read_text())
        self.combine = meta["combine"]
        self.members = []
        for i in range(int(meta["members"])):
            member_dir = directory / f"member-{i}"
            name = json.loads((member_dir / "strategy.json").read_text())["strategy"]
            self.members.append(get_strategy(name).load(member_dir))
        self.stacker = None
        if self.combine == "stack":
            with np.load(directory / "stack.npz", allow_pickle=False) as data:
                self.stacker = Stacker.from_arrays(data)
