"""The one interface every labelling strategy implements.

A strategy *scores*: ``predict_proba`` returns a matrix of shape ``(n_texts, n_labels)`` with a
score in [0, 1] per label, in the order of ``self.labels``. Turning scores into label sets is
the job of :mod:`labeler.decision`, so every strategy gets the same decision rules (top-k,
one threshold, per-label thresholds tuned on validation).

Persistence: ``save(directory)`` writes only non-executable formats (JSON, ``.npy``/``.npz``
without object arrays, safetensors, FAISS index files) and ``load(directory)`` reads them
back. Nothing is pickled, so loading a bundle cannot run code.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Iterable, Sequence

import numpy as np

from labeler.data import binarize

LabelSets = Sequence[Iterable[str]]
#: validation data passed to ``fit``: (texts, label_sets)
Labelled = tuple[Sequence[str], LabelSets]


class Strategy(ABC):
    """Base class. Subclasses set ``name`` and implement ``fit``, ``predict_proba``,
    ``_save`` and ``_load``.

    ``labels`` is the ordered label set; ``descriptions`` maps a label to a description
    (GitHub labels have one; zero-shot strategies use them). Keyword ``params`` are the
    strategy's hyper-parameters; they are stored in the bundle manifest and passed back to
    the constructor on load, so they must be JSON-serialisable.
    """

    name: ClassVar[str] = ""
    #: True when the strategy can score with no labelled training data (zero-shot).
    needs_training: ClassVar[bool] = True

    #: ``(scores, label_sets)`` of training issues the strategy held out for itself when fitted
    #: without a validation set (``auto`` does); the bundle tunes its decision rule on them
    held_out: tuple[np.ndarray, LabelSets] | None = None

    def __init__(self, labels: Sequence[str], descriptions: dict[str, str] | None = None, **params: Any):
        labels = list(labels)
        if not labels:
            raise ValueError("a strategy needs at least one label")
        if len(set(labels)) != len(labels):
            raise ValueError(f"duplicate labels in {labels}")
        self.labels: list[str] = labels
        self.descriptions: dict[str, str] = dict(descriptions or {})
        self.params: dict[str, Any] = params
        #: anything learnt during fit that the manifest should show (e.g. tuned k and m)
        self.fitted_info: dict[str, Any] = {}

    # -- training and scoring -------------------------------------------------------------
    @abstractmethod
    def fit(self, texts: Sequence[str], label_sets: LabelSets, *, valid: Labelled | None = None,
            unlabelled: Sequence[str] | None = None) -> "Strategy":
        """Learn from labelled texts; ``valid`` may be used for tuning only."""

    @abstractmethod
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Scores in [0, 1], shape ``(len(texts), len(self.labels))``."""

    def validation_scores(self, texts: Sequence[str]) -> np.ndarray:
        """Scores of the validation texts that decision rules are tuned on. The same as
        :meth:`predict_proba`, except for strategies that fitted part of themselves on the
        validation set (``auto``'s stacking returns out-of-fold scores)."""
        return self.predict_proba(texts)

    def explain(self, text: str) -> dict[str, Any]:
        """Why the strategy scored ``text`` as it did; strategies that can say more override
        this (kNN returns the neighbours)."""
        scores = self.predict_proba([text])[0]
        return {"scores": dict(zip(self.labels, map(float, scores)))}

    # -- helpers shared by subclasses -----------------------------------------------------
    def binarize(self, label_sets: LabelSets) -> np.ndarray:
        """Label sets to a 0/1 matrix over ``self.labels`` (unknown labels are ignored)."""
        return binarize(label_sets, self.labels)

    # -- persistence ----------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"strategy": self.name, "labels": self.labels, "descriptions": self.descriptions,
                "params": self.params, "fitted_info": self.fitted_info}
        (directory / "strategy.json").write_text(json.dumps(meta, indent=2, default=json_default))
        self._save(directory)

    @classmethod
    def load(cls, directory: str | Path) -> "Strategy":
        directory = Path(directory)
        meta = json.loads((directory / "strategy.json").read_text())
        if meta.get("strategy") != cls.name:
            raise ValueError(f"{directory} holds a {meta.get('strategy')!r} model, not {cls.name!r}")
        obj = cls(meta["labels"], meta.get("descriptions"), **meta.get("params", {}))
        obj.fitted_info = meta.get("fitted_info", {})
        obj._load(directory)
        return obj

    @abstractmethod
    def _save(self, directory: Path) -> None:
        """Write the learnt state (no pickles)."""

    @abstractmethod
    def _load(self, directory: Path) -> None:
        """Read the learnt state written by ``_save``."""


def json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
