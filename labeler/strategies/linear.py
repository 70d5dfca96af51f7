"""``linear``: TF-IDF n-grams and/or frozen sentence embeddings with one-vs-rest logistic
regression, the strong simple baseline every other strategy must beat.

Features (``features`` parameter):

* ``tfidf``: word n-grams (1..``word_ngram_max``) and character n-grams inside word
  boundaries (``char_wb``, ``char_ngram_min``..``char_ngram_max``), sublinear tf, each block
  L2-normalised, concatenated; texts are cut to ``max_chars`` characters first (a 200,000
  character log adds nothing but time);
* ``embedding``: the frozen encoder's normalised mean-pooled embeddings of the first
  ``max_length`` tokens (:mod:`labeler.encoders`, the embedded MiniLM unless ``model`` names
  another, e.g. a domain-adapted encoder directory), scaled by ``embedding_weight``. 128 tokens
  (title and the start of the body) scored as well as 256 on hf-datasets at every slice and
  better on macro F1 at 128 issues and up, at half the encoding time (experiments/README.md).
  ``quantize`` runs the encoder with int8 linear layers on the CPU (about twice as fast
  on a CPU with AVX-512;
  ``"auto"``: int8 where the encoder runs on a CPU with AVX-512, resolved when the model is
  built: on AVX2-only CPUs int8 was barely faster);
* ``both``: the two side by side.

One ``LogisticRegression`` per label (``class_weight="balanced"`` by default). ``C`` is
chosen on the validation set when one is given (from ``C_grid``, by the mean of micro and
macro average precision, which needs no threshold), else by 3-fold cross-validation on the
training data when it holds at least ``cv_min`` issues, else it is ``C_default``. Thresholds
are not this module's business: :mod:`labeler.decision` tunes them for every strategy. What
linear adds for them is :meth:`Linear.out_of_fold`: the training issues scored by
``threshold_folds`` refits that each leave a fold out, which the bundle pools with the
validation scores, so a rare label's threshold rests on more than its few validation positives.
Together with the ``micro+macro`` objective this is the ``auto [cpu, micro+macro]`` row against
``auto [cpu]`` (5 seeds): macro F1 .414 → .464 on sklearn with all of train and +.027 on
hf-datasets at 256 issues, for .007 to .036 less micro F1 from 256 issues up
(experiments/README.md).

A label seen in fewer than ``description_examples`` training issues (default 10) gets its name
and its label-map description as one more training issue: a young repository's rare labels
then have a model at all, and one that knows the words its maintainers chose for it. It is the
largest gain in macro F1 this strategy has seen at 32 to 128 issues (5 seeds, ``both``,
micro+macro objective; experiments/README.md): sklearn +.07 to +.10, hf-datasets +.01 to
+.06, for at most .01 micro F1; with all of train it changes nothing on hf-datasets (every
label has ten). The cross-fitted scores of :meth:`out_of_fold` are the real issues' alone;
``fitted_info["described"]`` (the manifest's ``fitted``) names the labels it helped.

Saved without pickles: vocabularies as JSON, idf vectors and the coefficient matrix as
``.npz``; loading rebuilds the vectorizers from them. Models saved before ``max_length``
existed embedded 256 tokens and load with that.

Scoring new issues, the character block goes through :class:`CharNgrams`, which gives
scikit-learn's matrix ten times faster.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from pydantic import Field
from sklearn.model_selection import KFold
from sklearn.preprocessing import normalize

from labeler.strategies import register
from labeler.strategies.base import Labelled, LabelSets, Metadata, Strategy, StrategyParams


class LinearParams(StrategyParams):
    features: Literal["tfidf", "embedding", "both"] = Field(
        "tfidf", description="TF-IDF n-grams, the frozen encoder's embeddings, or both side by side")
    word_ngram_max: int = Field(2, ge=1, le=4, description="longest word n-gram")
    char_ngram_min: int = Field(2, ge=1, description="shortest character n-gram (char_wb)")
    char_ngram_max: int = Field(5, ge=0, le=8, description="longest character n-gram; 0 switches character n-grams off")
    min_df: int = Field(1, ge=1, description="drop n-grams seen in fewer training issues")
    max_features: int | None = Field(200000, ge=1, description="most n-grams kept per block (by frequency)")
    max_chars: int = Field(6000, ge=100, description="texts are cut to this many characters before the n-grams")
    sublinear_tf: bool = Field(True, description="1 + log(tf) instead of raw counts")
    title_weight: float = Field(0.0, ge=0, description="> 0 adds the title's word n-grams as a block of their own, scaled by this")
    C: float | None = Field(None, gt=0, description="inverse regularisation strength; null: chosen from C_grid")
    C_grid: list[float] = Field([0.3, 1, 3, 10, 30, 100], min_length=1, description="values of C tried on validation or by 3-fold cross-validation")
    C_default: float = Field(10.0, gt=0, description="C when there is neither validation data nor cv_min training issues")
    cv_min: int = Field(60, ge=6, description="without validation data, cross-validate C from this many training issues")
    class_weight: Literal["balanced"] | None = Field("balanced", description="balanced: weigh each label's rare class up")
    description_examples: int = Field(10, ge=0, description="a label with fewer than this many training issues gets its name and description as one more training issue carrying it (0: none)")
    threshold_folds: int = Field(5, ge=0, description="cross-fit the training issues in this many folds at the chosen C, so that decision thresholds are tuned on their out-of-fold scores as well as on validation's; 0: validation only")
    model: str | None = Field(None, description="encoder for embedding features (a local directory or hub id); null: the embedded MiniLM")
    embedding_weight: float = Field(1.0, gt=0, description="scale of the embedding block next to the TF-IDF blocks")
    max_length: int = Field(128, ge=8, description="tokens of each issue the encoder reads for embedding features (fewer: faster)")
    device: str | None = Field(None, description="device for the encoder (cpu, cuda); null: CUDA when available")
    quantize: bool | Literal["auto"] = Field(False, description="int8 dynamic quantization of the encoder (CPU only): embeddings about twice as fast on a CPU with AVX-512, barely faster without, slightly different; auto: int8 where the encoder runs on a CPU with AVX-512 (stored resolved)")


def _ap(y: np.ndarray, scores: np.ndarray) -> float:
    """Mean of micro and macro average precision over the labels that occur in ``y``."""
    present = y.sum(axis=0) > 0
    if not present.any():
        return 0.0
    y, scores = y[:, present], scores[:, present]
    micro = average_precision_score(y.ravel(), scores.ravel())
    macro = float(np.mean([average_precision_score(y[:, j], scores[:, j]) for j in range(y.shape[1])]))
    return 0.5 * (micro + macro)


class CharNgrams:
    """``transform`` of a fitted ``char_wb`` :class:`TfidfVectorizer`, about ten times faster,
    with the same output (tests compare them).

    scikit-learn builds every character n-gram of every word of every issue in Python, and
    looks each one up in the vocabulary: most of the time a TF-IDF ``linear`` takes to score an
    issue. Words repeat (from one issue to the next, and inside one), so this looks each word's
    n-grams up once and keeps the column indices per word. The memo is a plain dict, emptied
    when it reaches ``max_words``: a bound without the per-lookup cost of an LRU's lock, which
    would cost more than the lookups it saves."""

    def __init__(self, vectorizer: TfidfVectorizer, max_words: int = 200_000):
        if vectorizer.analyzer != "char_wb" or vectorizer.norm != "l2" or not vectorizer.use_idf:
            raise ValueError("CharNgrams speeds up char_wb vectorizers with idf and l2 norm only")
        self.vectorizer = vectorizer
        self.vocabulary: dict[str, int] = vectorizer.vocabulary_
        self.idf = np.asarray(vectorizer.idf_, dtype=np.float32)
        self.min_n, self.max_n = vectorizer.ngram_range
        self.preprocess = vectorizer.build_preprocessor()
        self.max_words = max_words
        self._words: dict[str, np.ndarray] = {}

    def _columns(self, word: str) -> np.ndarray:
        """Vocabulary columns of the n-grams of one word, as scikit-learn's ``char_wb`` makes
        them: the word padded with a space each side; a padded word no longer than n counts once."""
        cols = self._words.get(word)
        if cols is None:
            padded, found = f" {word} ", []
            for n in range(self.min_n, self.max_n + 1):
                for start in range(max(len(padded) - n, 0) + 1):
                    col = self.vocabulary.get(padded[start:start + n])
                    if col is not None:
                        found.append(col)
                if len(padded) <= n:
                    break
            cols = np.asarray(found, dtype=np.int64)
            if len(self._words) >= self.max_words:
                self._words.clear()
            self._words[word] = cols
        return cols

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        indptr, indices, counts = [0], [], []
        for text in texts:
            words = self.preprocess(text).split()
            cols = np.concatenate([self._columns(w) for w in words]) if words else np.zeros(0, dtype=np.int64)
            unique, count = np.unique(cols, return_counts=True)
            indices.append(unique)
            counts.append(count.astype(np.float32))
            indptr.append(indptr[-1] + len(unique))
        data = np.concatenate(counts) if counts else np.zeros(0, dtype=np.float32)
        if self.vectorizer.sublinear_tf:
            data = np.log(data) + 1
        cols = np.concatenate(indices) if indices else np.zeros(0, dtype=np.int64)
        x = sp.csr_matrix((data * self.idf[cols], cols, indptr), shape=(len(texts), len(self.idf)), dtype=np.float32)
        return normalize(x, copy=False)


@register
class Linear(Strategy):
    """TF-IDF and/or embeddings with one-vs-rest logistic regression.

    Parameters: :class:`LinearParams`."""

    name = "linear"
    Params = LinearParams
    SAVED_WITHOUT = {"max_length": 256}

    def __init__(self, labels: Sequence[str], descriptions: dict[str, str] | None = None, **params: Any):
        super().__init__(labels, descriptions, **params)
        if self.params["quantize"] == "auto":  # resolved once, so that it is saved as it was trained
            from labeler.encoders import resolve_quantize

            self.params["quantize"] = self.uses_embedding and resolve_quantize("auto", self.params["device"])
        #: the fitted TF-IDF blocks by name (word, char, title), in feature order
        self.vectorizers: dict[str, TfidfVectorizer] = {}
        #: the fast transform of the char block (see :class:`CharNgrams`)
        self._char: CharNgrams | None = None
        #: (features, labels, C, number of real issues: description examples follow them) of the
        #: last fit, kept until :meth:`out_of_fold` uses them
        self._training: tuple[Any, np.ndarray, float, int] | None = None
        self.coef: np.ndarray | None = None  # (n_features, n_labels)
        self.intercept: np.ndarray = np.zeros(len(self.labels))
        #: labels with one class only in training get a constant score instead of a model
        self.constant: np.ndarray = np.zeros(len(self.labels))
        self.trained: np.ndarray = np.zeros(len(self.labels), dtype=bool)

    # -- features --------------------------------------------------------------------------
    @property
    def uses_tfidf(self) -> bool:
        return self.params["features"] in ("tfidf", "both")

    @property
    def uses_embedding(self) -> bool:
        return self.params["features"] in ("embedding", "both")

    def _vectorizers(self) -> dict[str, TfidfVectorizer | None]:
        """Fresh vectorizers of the TF-IDF blocks: ``word``, ``char`` (None when switched off)
        and ``title`` (None unless ``title_weight`` > 0)."""
        p = self.params
        common = {"sublinear_tf": bool(p["sublinear_tf"]), "min_df": p["min_df"],
                  "max_features": p["max_features"], "dtype": np.float32}
        words = r"(?u)\b\w+\b"
        return {
            "word": TfidfVectorizer(ngram_range=(1, int(p["word_ngram_max"])), token_pattern=words, **common),
            "char": TfidfVectorizer(analyzer="char_wb", ngram_range=(int(p["char_ngram_min"]), int(p["char_ngram_max"])),
                                    **common) if int(p["char_ngram_max"]) > 0 else None,
            "title": TfidfVectorizer(ngram_range=(1, 2), token_pattern=words, sublinear_tf=True, dtype=np.float32)
            if float(p["title_weight"]) > 0 else None,
        }

    @staticmethod
    def _titles(texts: Sequence[str]) -> list[str]:
        """The title of each text (everything before the first blank line, see
        :func:`labeler.data.issue_text`)."""
        return [(t or "").split("\n\n", 1)[0] for t in texts]

    def _cut(self, texts: Sequence[str]) -> list[str]:
        n = int(self.params["max_chars"])
        return [(t or "")[:n] for t in texts]

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        from labeler.encoders import get_encoder

        encoder = get_encoder(self.params["model"], device=self.params["device"], max_length=int(self.params["max_length"]),
                              quantize=bool(self.params["quantize"]))
        return encoder.encode(list(texts)) * float(self.params["embedding_weight"])

    def features(self, texts: Sequence[str], *, fit: bool = False) -> sp.csr_matrix:
        """The feature matrix of ``texts`` (``fit=True`` learns the vocabularies first)."""
        blocks = []
        if self.uses_tfidf:
            inputs = {"word": self._cut(texts), "char": self._cut(texts), "title": self._titles(texts)}
            weights = {"title": float(self.params["title_weight"])}
            if fit:
                self.vectorizers = {}
                for name, vec in self._vectorizers().items():
                    if vec is None:
                        continue
                    try:
                        vec.fit(inputs[name])
                    except ValueError:  # empty vocabulary: only empty texts
                        if name != "word":
                            continue
                        vec.set_params(token_pattern=r"(?u)\S+", analyzer="word")
                        vec.fit([t or "<empty>" for t in inputs[name]])
                    self.vectorizers[name] = vec
                self._char = None
            if not self.vectorizers:
                raise RuntimeError("linear is not fitted")
            for name, vec in self.vectorizers.items():
                if name == "char":
                    if self._char is None:
                        self._char = CharNgrams(vec)
                    blocks.append(self._char.transform(inputs[name]))
                    continue
                blocks.append(vec.transform(inputs[name]) * weights.get(name, 1.0))
        if self.uses_embedding:
            blocks.append(sp.csr_matrix(self._embed(texts)))
        return sp.hstack(blocks, format="csr", dtype=np.float32)

    # -- training --------------------------------------------------------------------------
    def _fit_matrix(self, x, y: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        n, d = x.shape
        positives = y.sum(axis=0)
        trained = (positives > 0) & (positives < n)
        # (features, labels), C-contiguous: a sparse matrix times a transposed view would copy
        # the whole matrix on every call (milliseconds per issue)
        coef = np.zeros((d, y.shape[1]), dtype=np.float32)
        intercept = np.zeros(y.shape[1])
        for j in np.flatnonzero(trained):
            model = LogisticRegression(C=c, class_weight=self.params["class_weight"], solver="liblinear", dual=x.shape[0] < x.shape[1],
                                       max_iter=1000)
            model.fit(x, y[:, j])
            coef[:, j] = model.coef_[0]
            intercept[j] = model.intercept_[0]
        return coef, intercept, trained, positives / max(n, 1)

    @staticmethod
    def _scores(x, coef, intercept, trained, constant) -> np.ndarray:
        out = np.tile(constant.astype(float), (x.shape[0], 1))
        if trained.any():
            # multiply by the whole (features, labels) matrix and pick the trained columns after:
            # indexing the weights first would copy them on every call (milliseconds per issue)
            z = (x @ coef)[:, trained] + intercept[trained]
            out[:, trained] = 1.0 / (1.0 + np.exp(-z))
        return out

    def _choose_c(self, x, y: np.ndarray, valid: tuple[Any, np.ndarray] | None) -> tuple[float, dict]:
        p = self.params
        grid = [float(c) for c in p["C_grid"]]
        if valid is not None:
            xv, yv = valid
            results = {c: _ap(yv, self._scores(xv, *self._fit_matrix(x, y, c))) for c in grid}
            return max(results, key=results.get), {"by": "validation", "ap": results}
        n = x.shape[0]
        if n >= int(p["cv_min"]):
            folds = KFold(n_splits=3, shuffle=True, random_state=0)
            results = {}
            for c in grid:
                scores = np.zeros(y.shape, dtype=float)
                for tr, te in folds.split(np.arange(n)):
                    scores[te] = self._scores(x[te], *self._fit_matrix(x[tr], y[tr], c))
                results[c] = _ap(y, scores)
            return max(results, key=results.get), {"by": "3-fold cross-validation", "ap": results}
        return float(p["C_default"]), {"by": f"default (fewer than {p['cv_min']} issues, no validation)"}

    def fit(self, texts: Sequence[str], label_sets: LabelSets, *, valid: Labelled | None = None,
            unlabelled: Sequence[str] | None = None, metadata: Metadata | None = None) -> "Linear":
        if len(texts) == 0:
            raise ValueError("linear needs at least one labelled issue")
        n = len(texts)
        y = self.binarize(label_sets)
        rare = [label for label, k in zip(self.labels, y.sum(axis=0)) if k < self.params["description_examples"]]
        if rare:  # a title-and-body text per rare label, carrying that label alone
            texts = list(texts) + [f"{label}\n\n{self.descriptions.get(label, '')}" for label in rare]
            y = np.vstack([y, self.binarize([[label] for label in rare])])
        x = self.features(texts, fit=True)
        if self.params["C"] is not None:
            c, how = float(self.params["C"]), {"by": "parameter"}
        else:
            v = None
            if valid is not None and len(valid[0]):
                v = (self.features(valid[0]), self.binarize(valid[1]))
            c, how = self._choose_c(x, y, v)
        self.coef, self.intercept, self.trained, self.constant = self._fit_matrix(x, y, c)
        self._training = (x, y, c, n)  # for out_of_fold, which frees it
        self.fitted_info = {"C": c, "C_chosen_by": how.pop("by"), **{k: {str(c): round(v, 4) for c, v in d.items()}
                                                                       for k, d in how.items()},
                            "n_features": int(x.shape[1]), "described": rare}
        return self

    def out_of_fold(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Out-of-fold scores of the training issues: ``threshold_folds`` refits at the chosen
        C on the features of the last ``fit`` (the vocabularies and idf of all training
        issues, a negligible leak for thresholds). ``None`` with fewer than two issues per
        fold or ``threshold_folds=0``. Frees the training matrix it used."""
        training, self._training = self._training, None
        folds = int(self.params["threshold_folds"])
        if training is None or folds < 2 or training[3] < 2 * folds:
            return None
        x, y, c, n = training
        scores = np.zeros((n, y.shape[1]), dtype=float)
        added = np.arange(n, x.shape[0])  # description examples: in every fold's training, never scored
        for tr, te in KFold(n_splits=folds, shuffle=True, random_state=0).split(np.arange(n)):
            tr = np.concatenate([tr, added])
            scores[te] = self._scores(x[te], *self._fit_matrix(x[tr], y[tr], c))
        return scores, y[:n]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if self.coef is None:
            raise RuntimeError("linear is not fitted")
        if not len(texts):
            return np.zeros((0, len(self.labels)))
        return self._scores(self.features(texts), self.coef, self.intercept, self.trained, self.constant)

    # -- persistence: vocabularies as JSON, idf and weights as arrays -----------------------
    def _save(self, directory: Path) -> None:
        assert self.coef is not None
        arrays: dict[str, np.ndarray] = {"coef": self.coef, "intercept": self.intercept,
                                         "trained": self.trained, "constant": self.constant}
        vocab: dict[str, Any] = {}
        for name, vec in self.vectorizers.items():
            vocab[name] = {"vocabulary": {t: int(i) for t, i in vec.vocabulary_.items()},
                           "token_pattern": vec.token_pattern}
            arrays[f"{name}_idf"] = vec.idf_
        (directory / "vocabulary.json").write_text(json.dumps(vocab))
        np.savez_compressed(directory / "linear.npz", **arrays)

    def _load(self, directory: Path) -> None:
        vocab = json.loads((directory / "vocabulary.json").read_text())
        fresh = self._vectorizers()
        self.vectorizers = {}
        with np.load(directory / "linear.npz", allow_pickle=False) as data:
            self.coef = data["coef"]
            self.intercept = data["intercept"]
            self.trained = data["trained"].astype(bool)
            self.constant = data["constant"]
            for name, saved in vocab.items():  # JSON keeps the order they were saved in
                vec = fresh[name]
                vec.set_params(vocabulary=saved["vocabulary"], token_pattern=saved["token_pattern"])
                vec.vocabulary_ = saved["vocabulary"]
                vec.idf_ = data[f"{name}_idf"]
                self.vectorizers[name] = vec
        self._char = None
