"""Model bundles: a trained strategy, its decision rule and a manifest, in one directory.

Layout::

    BUNDLE/
      manifest.json   strategy, labels, decision rule and thresholds, training-data hash and
                      size, validation metrics, library versions, created time
      model/          the strategy's own files (JSON, .npy/.npz, safetensors, FAISS index)

Nothing in a bundle is a pickle, so loading one cannot run code. This module is the small
surface the bot uses: :meth:`Bundle.load`, :meth:`Bundle.classify` (every label with its
score and decision: apply, suggest or below) and :meth:`Bundle.explain` (an :class:`Explanation`).
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Sequence

import numpy as np

from labeler import __version__
from labeler.decision import (DECISION_NAMES, DecisionRule, Objective, check_decision, check_groups, check_objective,
                               default_rule, tune)
from labeler.errors import BundleError
from labeler.metrics import evaluate
from labeler.strategies import Strategy, get_strategy
from labeler.strategies.base import Explanation, LabelSets, Metadata, Neighbour, json_default

if TYPE_CHECKING:
    from labeler.augment import Augmentation

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_LIBRARIES = ("numpy", "scikit-learn", "scikit-multilearn", "torch", "transformers",
              "sentence-transformers", "setfit", "faiss-cpu", "faiss-gpu")


class Prediction(NamedTuple):
    label: str
    score: float


class LabelCall(NamedTuple):
    """One label's verdict for one issue: ``decision`` is ``apply`` (chosen and confident
    enough for the precision target), ``suggest`` (chosen, less sure) or ``below``."""

    label: str
    score: float
    decision: str


def data_hash(texts: Sequence[str], label_sets: LabelSets) -> str:
    """A SHA-256 over the training texts and labels, order included (for the manifest)."""
    h = hashlib.sha256()
    for text, labels in zip(texts, label_sets):
        h.update(text.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
        h.update("\x1f".join(sorted(labels)).encode())
        h.update(b"\x01")
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "issue-labeler": __version__}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


@dataclass
class Bundle:
    strategy: Strategy
    decision: DecisionRule
    manifest: dict[str, Any] = field(default_factory=dict)
    #: what :meth:`train` tuned the decision rule on, kept in memory only (never saved):
    #: ``(scores, y, n_valid)``, the validation issues being the last ``n_valid`` rows (the
    #: rows before them are out-of-fold training scores); None without validation data.
    #: ``experiments/benchmark.py --save-scores`` writes it out for studies of decision rules.
    tuning: tuple[np.ndarray, np.ndarray, int] | None = field(default=None, repr=False, compare=False)

    @property
    def labels(self) -> list[str]:
        return self.strategy.labels

    @property
    def version(self) -> str | None:
        """The bundle's version: its creation time and the short hash of its training data
        (``2026-01-02T12:00:00+00:00/1a2b3c4d``); None before it is saved."""
        created = self.manifest.get("created")
        sha = (self.manifest.get("training") or {}).get("sha256", "")
        return f"{created}/{sha[:8]}" if created else None

    @property
    def input_options(self) -> dict[str, Any]:
        """How ``train`` read its data (format and column options; empty for older bundles)."""
        return dict(self.manifest.get("input") or {})

    # -- training -------------------------------------------------------------------------
    @classmethod
    def train(cls, strategy: str | Strategy, texts: Sequence[str], label_sets: LabelSets, *,
              labels: Sequence[str] | None = None, descriptions: dict[str, str] | None = None,
              valid: tuple[Sequence[str], LabelSets] | None = None,
              unlabelled: Sequence[str] | None = None, decision: str = "auto",
              params: dict[str, Any] | None = None, objective: str | Objective = "micro",
              exclusive: Sequence[Sequence[str]] | None = None, metadata: Metadata | None = None,
              augment: "Augmentation | None" = None, out_of_fold: bool = True) -> "Bundle":
        """Fit a strategy (a name from the registry or an instance), tune the decision rule on
        ``valid`` when given for ``objective`` (``micro``, ``macro``, ``micro+macro`` or
        ``precision=P``, see :mod:`labeler.decision`), with at most one label of each
        ``exclusive`` group, and record everything in the manifest. ``metadata`` (one record per text: number, id,
        title; see :meth:`labeler.pipeline.Prepared.metadata`) goes to ``fit`` when given, for
        strategies that explain with training issues.

        ``augment`` (a :class:`labeler.augment.Augmentation`) adds its altered copies of
        ``texts`` (and only of them: never of ``valid`` or ``unlabelled``) before fitting; the
        manifest's ``augment`` records method, copies, seed and model, and ``training`` counts
        the copies. With ``auto`` it needs ``valid`` (auto's own hold-out would hold out copies).

        Strategies that cross-fit their training issues (:meth:`Strategy.out_of_fold`:
        ``linear``) add those out-of-fold scores to the tuning data (not with ``augment``, nor
        with ``out_of_fold=False``, which ``retrain`` passes to tune on its newest issues only);
        the manifest's ``decision_tuned_on`` counts both parts, and its ``validation`` scores
        are validation's alone.

        With no validation data the rule is ``decision`` with its defaults (``auto`` means
        a 0.5 threshold, or top-1 for strategies that need no training).

        A bad ``decision``, ``objective`` or strategy parameter raises
        :class:`~labeler.errors.ParameterError` before anything is fitted."""
        check_decision(decision)
        goal = check_objective(objective)
        if isinstance(strategy, str):
            if labels is None:
                raise ValueError("labels are needed to build a strategy by name")
            strategy = get_strategy(strategy)(labels, descriptions, **(params or {}))
        groups = check_groups(exclusive, strategy.labels)
        if metadata is not None and len(metadata) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(metadata)} metadata records")
        augmented = None
        if augment is not None:
            from labeler.augment import check_strategy

            check_strategy(strategy.name, valid is not None and len(valid[0]) > 0)
            n_original, started = len(texts), time.perf_counter()
            texts, label_sets, metadata = augment.apply(texts, label_sets, metadata)
            augmented = {**augment.record(), "n_original": n_original, "n_added": len(texts) - n_original,
                         "seconds": round(time.perf_counter() - started, 3)}
        # passed only when given, so a strategy written before metadata existed still trains
        extra = {"metadata": metadata} if metadata is not None else {}
        started = time.perf_counter()
        strategy.fit(texts, label_sets, valid=valid, unlabelled=unlabelled, **extra)
        train_seconds = time.perf_counter() - started
        manifest: dict[str, Any] = {
            "training": {"n": len(texts), "sha256": data_hash(texts, label_sets),
                         "seconds": round(train_seconds, 3),
                         "n_unlabelled": len(unlabelled) if unlabelled is not None else 0},
        }
        if augmented is not None:
            manifest["augment"] = augmented
        tuning = None
        if valid is not None and len(valid[0]):
            tuning = (strategy.validation_scores(valid[0]), strategy.binarize(valid[1]))
        elif strategy.held_out is not None:  # the strategy held out part of train itself (auto)
            tuning = (strategy.held_out[0], strategy.binarize(strategy.held_out[1]))
            manifest["validation_from"] = "training hold-out"
        if tuning is not None:
            scores, y_valid = tuning
            pooled_scores, pooled_y = scores, y_valid
            # out-of-fold training scores join the tuning data, except with augmentation: a
            # copy of an issue in another fold would score it as if it had been seen
            oof = strategy.out_of_fold() if augment is None and out_of_fold else None
            if oof is not None:
                pooled_scores, pooled_y = np.vstack([oof[0], scores]), np.vstack([oof[1], y_valid])
                manifest["decision_tuned_on"] = {"validation": int(len(y_valid)), "out_of_fold_training": int(len(oof[1]))}
            rule, _ = tune(pooled_scores, pooled_y, strategy.labels, kind=decision, objective=goal, exclusive=groups)
            manifest["validation"] = evaluate(y_valid, rule.decide(scores, strategy.labels), strategy.labels)
        else:
            rule = default_rule(strategy.needs_training, decision, groups, strategy.labels)
        bundle = cls(strategy, rule, manifest)
        if tuning is not None:
            bundle.tuning = (pooled_scores, pooled_y, int(len(y_valid)))
        return bundle

    # -- inference ------------------------------------------------------------------------
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.strategy.predict_proba(list(texts))

    def decide(self, texts: Sequence[str]) -> np.ndarray:
        """0/1 matrix of chosen labels."""
        return self.decision.decide(self.predict_proba(texts), self.labels)

    def predict(self, texts: Sequence[str]) -> list[list[Prediction]]:
        """For each text, the chosen labels with their scores, best first."""
        scores = self.predict_proba(texts)
        chosen = self.decision.decide(scores, self.labels)
        out = []
        for row_scores, row_chosen in zip(scores, chosen):
            picks = [Prediction(self.labels[j], float(row_scores[j])) for j in np.flatnonzero(row_chosen)]
            out.append(sorted(picks, key=lambda p: -p.score))
        return out

    def classify(self, texts: Sequence[str], precision: float | None = None) -> list[list[LabelCall]]:
        """Every label of every text with its score and decision (``apply``, ``suggest`` or
        ``below``), best first. ``precision`` asks that applied labels reach this validation
        precision (the bot passes the repository's target); ``None`` uses the bundle's own
        objective (see :meth:`labeler.decision.DecisionRule.classify`)."""
        scores = self.predict_proba(texts)
        codes = self.decision.classify(scores, self.labels, precision)
        out = []
        for row_scores, row_codes in zip(scores, codes):
            calls = [LabelCall(label, float(score), DECISION_NAMES[int(code)])
                     for label, score, code in zip(self.labels, row_scores, row_codes)]
            out.append(sorted(calls, key=lambda c: -c.score))
        return out

    def explain(self, text: str) -> Explanation:
        """Why the strategy scored ``text`` as it did: an :class:`Explanation` (scores per
        label, the similar training issues as :class:`Neighbour` records when the strategy
        has them, strategy details); ``.to_dict()`` for JSON."""
        return self.strategy.explain(text)

    def evaluate(self, texts: Sequence[str], label_sets: LabelSets) -> dict[str, Any]:
        y = self.strategy.binarize(label_sets)
        started = time.perf_counter()
        pred = self.decide(texts)
        elapsed = time.perf_counter() - started
        result = evaluate(y, pred, self.labels)
        result["ms_per_issue"] = 1000 * elapsed / max(len(texts), 1)
        return result

    # -- persistence ----------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the bundle; an existing bundle at ``directory`` is replaced only once the new
        one is completely written (nothing lost if saving fails half-way)."""
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        try:
            self.strategy.save(tmp / "model")
            manifest = {
                **self.manifest,
                "format_version": FORMAT_VERSION,
                "strategy": self.strategy.name,
                "params": self.strategy.params,
                "fitted": self.strategy.fitted_info,
                "labels": self.labels,
                "descriptions": self.strategy.descriptions,
                "decision": self.decision.to_dict(),
                "libraries": library_versions(),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=json_default))
            # the old bundle is moved aside, not deleted, until the new one is in place: the
            # gap between the two renames is microseconds, never a delete of a whole tree (the
            # registry, labeler.registry, is the way to swap models with no gap at all)
            old = directory.with_name(f".{directory.name}.old-{tmp.name}") if directory.exists() else None
            if old is not None:
                directory.rename(old)
            try:
                tmp.rename(directory)
            except BaseException:
                if old is not None:
                    old.rename(directory)
                raise
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.manifest = manifest
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "Bundle":
        """Read a bundle; a missing, corrupt or incompatible one raises :class:`BundleError`."""
        directory = Path(directory)
        path = directory / MANIFEST
        if not directory.is_dir():
            raise BundleError(f"no model bundle at {directory} (not a directory)")
        if not path.is_file():
            raise BundleError(f"{directory} is not a model bundle: {MANIFEST} is missing")
        try:
            manifest = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BundleError(f"corrupt bundle {directory}: {MANIFEST} is not valid JSON ({exc})") from None
        version = manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise BundleError(f"bundle {directory} has format version {version!r}; this issue-labeler "
                              f"reads version {FORMAT_VERSION}: retrain it with this version")
        try:
            strategy_cls = get_strategy(manifest["strategy"])
            strategy = strategy_cls.load(directory / "model")
            decision = DecisionRule.from_dict(manifest["decision"])
        except KeyError as exc:
            raise BundleError(f"incompatible bundle {directory}: {exc}") from None
        except (OSError, ValueError) as exc:
            raise BundleError(f"corrupt bundle {directory}: {exc}") from None
        return cls(strategy, decision, manifest)


__all__ = ["Bundle", "Explanation", "LabelCall", "Neighbour", "Prediction", "data_hash", "library_versions"]
