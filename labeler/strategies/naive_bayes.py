"""Naive Bayes, the book's baseline: ``CountVectorizer`` + scikit-multilearn's
``BinaryRelevance(MultinomialNB)``.

Saved without pickles: the vectorizer's vocabulary as JSON and each label's
``class_log_prior_``/``feature_log_prob_`` as arrays in one ``.npz``; loading rebuilds the
scikit-learn objects from them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Sequence

import numpy as np
from pydantic import Field
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.naive_bayes import MultinomialNB
from skmultilearn.problem_transform import BinaryRelevance

from labeler.strategies import register
from labeler.strategies.base import Labelled, LabelSets, Metadata, Strategy, StrategyParams


class NaiveBayesParams(StrategyParams):
    alpha: float = Field(1.0, ge=0, description="MultinomialNB additive (Laplace/Lidstone) smoothing")
    ngram_max: int = Field(1, ge=1, description="longest word n-gram counted (1: single words)")
    min_df: Annotated[int, Field(ge=1)] | Annotated[float, Field(gt=0, le=1)] = Field(
        1, description="drop terms in fewer issues than this (an int), or this fraction of issues (a float)")
    lowercase: bool = Field(True, description="lowercase texts before counting")


@register
class NaiveBayes(Strategy):
    """Naive Bayes: word counts and one multinomial naive Bayes per label (the book's baseline).

    Parameters: :class:`NaiveBayesParams`."""

    name = "naive_bayes"
    Params = NaiveBayesParams

    def __init__(self, labels: Sequence[str], descriptions: dict[str, str] | None = None, **params):
        super().__init__(labels, descriptions, **params)
        self.vectorizer: CountVectorizer | None = None
        self.model: BinaryRelevance | None = None
        #: labels with one class only in training get this constant score instead of a model
        self.constant: np.ndarray = np.zeros(len(self.labels))
        self.trained: np.ndarray = np.zeros(len(self.labels), dtype=bool)

    def _make_vectorizer(self, **kwargs) -> CountVectorizer:
        p = self.params
        return CountVectorizer(ngram_range=(1, int(p["ngram_max"])), min_df=p["min_df"],
                               lowercase=bool(p["lowercase"]), **kwargs)

    def fit(self, texts: Sequence[str], label_sets: LabelSets, *, valid: Labelled | None = None,
            unlabelled: Sequence[str] | None = None, metadata: Metadata | None = None) -> "NaiveBayes":
        y = self.binarize(label_sets)
        if len(texts) == 0:
            raise ValueError("naive_bayes needs at least one labelled issue")
        self.vectorizer = self._make_vectorizer()
        try:
            x = self.vectorizer.fit_transform(texts)
        except ValueError:  # empty vocabulary: only empty or stop-word texts
            self.vectorizer = self._make_vectorizer(token_pattern=r"(?u)\S+")
            x = self.vectorizer.fit_transform([t or "<empty>" for t in texts])
        positives = y.sum(axis=0)
        # MultinomialNB needs both classes: a label never (or always) seen keeps its base rate
        self.trained = (positives > 0) & (positives < len(texts))
        self.constant = positives / len(texts)
        self.model = None
        if self.trained.any():
            self.model = BinaryRelevance(MultinomialNB(alpha=float(self.params["alpha"])),
                                         require_dense=[False, True])
            self.model.fit(x, y[:, self.trained])
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if self.vectorizer is None:
            raise RuntimeError("naive_bayes is not fitted")
        out = np.tile(self.constant.astype(float), (len(texts), 1))
        if self.model is not None and len(texts):
            x = self.vectorizer.transform(texts)
            out[:, self.trained] = self.model.predict_proba(x).toarray()
        return out

    # -- persistence: vocabulary as JSON, NB parameters as plain arrays -------------------
    def _save(self, directory: Path) -> None:
        assert self.vectorizer is not None
        vocab = {term: int(i) for term, i in self.vectorizer.vocabulary_.items()}
        (directory / "vocabulary.json").write_text(json.dumps(
            {"vocabulary": vocab, "token_pattern": self.vectorizer.token_pattern}))
        arrays = {"constant": self.constant, "trained": self.trained}
        if self.model is not None:
            arrays["class_log_prior"] = np.stack([c.class_log_prior_ for c in self.model.classifiers_])
            arrays["feature_log_prob"] = np.stack([c.feature_log_prob_ for c in self.model.classifiers_])
            arrays["class_count"] = np.stack([c.class_count_ for c in self.model.classifiers_])
            arrays["feature_count"] = np.stack([c.feature_count_ for c in self.model.classifiers_])
        np.savez_compressed(directory / "naive_bayes.npz", **arrays)

    def _load(self, directory: Path) -> None:
        meta = json.loads((directory / "vocabulary.json").read_text())
        self.vectorizer = self._make_vectorizer(token_pattern=meta["token_pattern"],
                                                vocabulary=meta["vocabulary"])
        self.vectorizer.vocabulary_ = meta["vocabulary"]
        with np.load(directory / "naive_bayes.npz", allow_pickle=False) as data:
            self.constant = data["constant"]
            self.trained = data["trained"].astype(bool)
            self.model = None
            if "class_log_prior" in data:
                classifiers = []
                for j in range(data["class_log_prior"].shape[0]):
                    nb = MultinomialNB(alpha=float(self.params["alpha"]))
                    nb.classes_ = np.array([0, 1])
                    nb.class_log_prior_ = data["class_log_prior"][j]
                    nb.feature_log_prob_ = data["feature_log_prob"][j]
                    nb.class_count_ = data["class_count"][j]
                    nb.feature_count_ = data["feature_count"][j]
                    nb.n_features_in_ = nb.feature_log_prob_.shape[1]
                    classifiers.append(nb)
                n = len(classifiers)
                model = BinaryRelevance(MultinomialNB(), require_dense=[False, True])
                model.classifiers_ = classifiers
                model.partition_ = list(range(n))
                model._label_count = n
                model.model_count_ = n
                self.model = model
