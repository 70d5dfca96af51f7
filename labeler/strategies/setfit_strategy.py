"""SetFit (huggingface/setfit): contrastive tuning of a sentence-transformer, then a
one-vs-rest logistic-regression head on its embeddings.

Training follows setfit's own two phases:

1. **Body**: setfit's ``Trainer`` generates pairs of training issues (positive when the two
   share a label, ``multi_target_strategy="one-vs-rest"``) and tunes the sentence-transformer
   with ``CosineSimilarityLoss``. ``num_iterations`` pairs per issue and class (positive,
   negative) are drawn, so the work grows linearly with the number of issues; ``max_steps`` and
   ``max_seconds`` bound it (when the wall clock runs out, the body tuned so far is kept).
2. **Head**: by default (``head="logistic"``) one scikit-learn ``LogisticRegression`` per
   label on the tuned embeddings, which is exactly what setfit's one-vs-rest head
   (``OneVsRestClassifier(LogisticRegression())``) computes. A label with no positive (or no
   negative) training issue gets a constant score, its training base rate, as in
   ``naive_bayes``. ``head="linear"`` fits the :mod:`linear <labeler.strategies.linear>`
   strategy instead, on TF-IDF n-grams and the tuned embeddings side by side
   (``features="both"``, its C tuned on validation, its out-of-fold scores given to the
   decision rule): the tuned encoder in place of the frozen one in ``linear``'s strongest
   variant. Per-label thresholds are tuned on validation by :class:`labeler.bundle.Bundle`;
   this strategy returns the head's probabilities.

No pickles: setfit's ``SetFitModel.save_pretrained`` writes the sklearn head with joblib (a
pickle), so the bundle instead holds the body written by the sentence-transformer's own
``save_pretrained`` (safetensors) in ``body/`` and the heads' coefficients in ``head.npz``
(or, with ``head="linear"``, the ``linear`` model in ``linear/``, in its own format);
loading reads the body with ``SentenceTransformer`` (never ``SetFitModel.from_pretrained``,
which would ``joblib.load`` a ``model_head.pkl`` if one were there) and rebuilds the heads.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any, Iterator, Literal, Optional, Sequence

import numpy as np
from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

from labeler.hf import (accelerate_cpu, autocast, make_budget_callback, pick_device, quiet_transformers,
                        resolve_model, resolve_precision, truncate_chars)
from labeler.strategies import register
from labeler.strategies.base import Labelled, LabelSets, Metadata, Strategy, StrategyParams



class SetFitParams(StrategyParams):
    """See :class:`SetFit` for the reasoning behind the defaults."""

    model: Optional[str] = Field("default", description="sentence-transformer to start from: hub id or directory; "
                                                        "default = embedded all-MiniLM-L6-v2")
    num_iterations: PositiveInt = Field(5, description="setfit's pair budget: 2 * num_iterations * n_train pairs "
                                                       "per epoch")
    epochs: PositiveInt = Field(1, description="epochs over the generated pairs")
    batch_size: PositiveInt = Field(16, description="pairs per contrastive step")
    body_learning_rate: PositiveFloat = Field(2e-5, description="learning rate of the contrastive phase")
    max_length: PositiveInt = Field(128, description="tokens per issue")
    head_c: PositiveFloat = Field(1.0, description="LogisticRegression C of the per-label heads")
    head_max_iter: PositiveInt = Field(1000, description="LogisticRegression iterations")
    device: str = Field("auto", description="auto (cuda when available), cpu, cuda, ...; an absent GPU falls back "
                                            "to the CPU with a warning")
    seed: int = Field(0, description="training seed (data order)")
    max_steps: Optional[NonNegativeInt] = Field(60, description="at most this many contrastive steps "
                                                                "(None or 0: no limit)")
    max_seconds: Optional[NonNegativeFloat] = Field(420, description="wall-clock budget of the contrastive phase "
                                                                     "(None: no limit); the head is always fitted; "
                                                                     "1,000 issues train and tune in under 10 "
                                                                     "minutes on 2 CPU cores")
    encode_batch_size: PositiveInt = Field(64, description="batch size when embedding issues for the head and scoring")
    progress: bool = Field(False, description="show setfit's progress bars and logs")
    head: Literal["logistic", "linear"] = Field("logistic", description="logistic: setfit's one-vs-rest logistic "
                                                "regression on the tuned embeddings; linear: the linear strategy "
                                                "on TF-IDF n-grams and the tuned embeddings side by side")
    head_params: dict[str, Any] = Field({}, description="parameters of the linear head (see linear; default "
                                                        "features=both); its model, max_length and device are setfit's")
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="contrastive phase in float32 or under "
                                                       "bf16 autocast; auto: bf16 where the device computes it "
                                                       "natively (a GPU with bf16, a CPU with AVX-512 BF16 or AMX)")



@register
class SetFit(Strategy):
    """SetFit on the embedded MiniLM (or any sentence-transformer) with a one-vs-rest head.

    Parameters (all JSON values; defaults in brackets; validated by :class:`SetFitParams`,
    which ``issue-labeler strategies --verbose`` lists):

    - ``model`` ["default"]: sentence-transformer to start from, a hub id or a local directory
      ("default" is the embedded all-MiniLM-L6-v2). A plain transformer directory works too
      (sentence-transformers adds mean pooling).
    - ``num_iterations`` [5]: setfit's pair budget: ``2 * num_iterations * n_train`` pairs per
      epoch (setfit's paper uses 20; 5 keeps CPU runs to minutes at a few hundred issues).
    - ``epochs`` [1]: epochs over the generated pairs.
    - ``batch_size`` [16]: pairs per contrastive step.
    - ``body_learning_rate`` [2e-5]: learning rate of the contrastive phase (setfit's default).
    - ``max_length`` [128]: tokens per issue (the body's ``max_seq_length``).
    - ``head_c`` [1.0], ``head_max_iter`` [1000]: ``LogisticRegression`` C and iterations.
    - ``device`` ["auto"]: "auto" (CUDA when torch sees it, else CPU), "cpu", "cuda", ...;
      a GPU that is asked for but absent falls back to the CPU with a warning.
    - ``seed`` [0]: training seed (data order); the pairs come from setfit's sampler.
    - ``max_steps`` [60]: at most this many contrastive steps (setfit's ``max_steps``; 60
      steps of 16 pairs = 960 pairs, reached by ``num_iterations=5`` at 96 issues, so from
      there on the contrastive phase costs the same whatever the number of issues). On
      hf-datasets 60 steps gave the benchmark's setfit row (.775 micro F1 at 256 issues, .808
      at ~790, about 2 minutes each on 2 CPU cores), where an earlier run with 160 steps had
      given .758 at 256 issues in 864 s on a busy machine. A step of MiniLM at 128 tokens took
      about 1.7 s in the benchmark and about 5.4 s on two busy CPU cores. ``None``: no step
      limit.
    - ``max_seconds`` [420]: wall-clock budget of the contrastive phase; when it runs out the
      body as tuned so far is kept and the head is always fitted on it (there is no validation
      inside the contrastive phase, so the last body is the best one known). 420 s leaves room
      for loading, embedding the training issues for the head and the bundle's threshold
      tuning within 10 minutes for 1,000 issues on 2 CPU cores (``experiments/cpu_budget.py``).
    - ``encode_batch_size`` [64]: batch size when embedding issues for the head and scoring.
    - ``progress`` [False]: show setfit's progress bars and logs.
    - ``head`` ["logistic"]: setfit's own head, or ``"linear"``: the ``linear`` strategy on TF-IDF
      and the tuned embeddings (see the module docstring), with ``head_params`` [{}] as its
      parameters (``features`` defaults to ``"both"``; ``model``, ``max_length`` and ``device``
      are setfit's and cannot be set there).
    - ``precision`` ["auto"]: the contrastive phase in ``"fp32"``, or with the transformer under
      ``"bf16"`` autocast (float32 weights, bfloat16 matrix products) and its token embeddings
      handed back as float32, so that mean pooling, normalisation and the loss stay float32;
      ``"auto"`` is bf16 where the device computes it natively (:func:`labeler.hf.native_bf16`:
      a CUDA GPU with bf16, a CPU with AVX-512 BF16 or AMX), fp32 elsewhere. The head and
      scoring always run in float32. ``fitted_info["precision"]`` says what was used. On
      hf-datasets (all 789 training issues, seed 0, 200 steps, linear head) bf16 trained in 409 s
      on 2 AMD EPYC (family 25) cores, against 734 s in float32 on a family-26 one, and scored
      what float32 did (.850 / .601 micro / macro F1, the same validation precision to four
      places); autocast over the whole body, pooling and loss included, had cost .03 micro
      F1 (.820 / .593).
    """

    name = "setfit"
    Params = SetFitParams

    def __init__(self, labels: Sequence[str], descriptions: dict[str, str] | None = None, **params: Any):
        super().__init__(labels, descriptions, **params)
        self.body = None  # the tuned SentenceTransformer
        self.device: str | None = None
        n = len(self.labels)
        #: labels with both classes in training get a logistic regression; others a constant
        self.trained = np.zeros(n, dtype=bool)
        self.constant = np.zeros(n)
        self.coef = np.zeros((0, 0))
        self.intercept = np.zeros(0)
        #: with head="linear": the fitted linear strategy, and the directory of the tuned body it
        #: reads (the body is then not kept in memory twice: ``self.body`` is None)
        self.head_model: Any = None
        self._body_dir: Path | None = None
        if self.params["head"] == "linear":
            from labeler.errors import ParameterError
            from labeler.strategies.linear import Linear

            fixed = sorted(set(self.params["head_params"]) & {"model", "max_length", "device"})
            if fixed:
                raise ParameterError(f"setfit: head_params cannot set {', '.join(fixed)}: the linear head reads "
                                     "setfit's tuned body with setfit's own max_length and device")
            Linear.check_params(self._linear_params(Path(".")))  # a bad key fails here, not after the tuning

    # -- helpers --------------------------------------------------------------------------
    def _linear_params(self, body: Path) -> dict[str, Any]:
        """Parameters of the linear head that reads the tuned body saved in ``body``."""
        return {"features": "both", **self.params["head_params"], "model": str(body),
                "max_length": int(self.params["max_length"]), "device": self.device}

    def _load_body(self, source: str):
        from sentence_transformers import SentenceTransformer

        body = SentenceTransformer(source, device=self.device)
        body.max_seq_length = int(self.params["max_length"])
        return body

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        max_length = int(self.params["max_length"])
        cut = [truncate_chars(t, max_length) for t in texts]
        emb = self.body.encode(cut, batch_size=int(self.params["encode_batch_size"]), convert_to_numpy=True,
                               show_progress_bar=bool(self.params["progress"]), device=self.device)
        return np.asarray(emb, dtype=np.float64)

    # -- training -------------------------------------------------------------------------
    def fit(self, texts: Sequence[str], label_sets: LabelSets, *, valid: Labelled | None = None,
            unlabelled: Sequence[str] | None = None, metadata: Metadata | None = None) -> "SetFit":
        if len(texts) == 0:
            raise ValueError("setfit needs at least one labelled issue")
        from datasets import Dataset
        from setfit import SetFitModel, Trainer, TrainingArguments
        from sklearn.linear_model import LogisticRegression

        p = self.params
        started = time.perf_counter()
        self.device = pick_device(p["device"])
        precision = resolve_precision(p["precision"], self.device)
        quiet = not p["progress"]
        max_length = int(p["max_length"])
        full_texts = list(texts)  # the linear head's TF-IDF reads more than the body's tokens
        texts = [truncate_chars(t, max_length) for t in texts]
        y = self.binarize(label_sets)
        positives = y.sum(axis=0)
        self.trained = (positives > 0) & (positives < len(texts))
        self.constant = positives / len(texts)

        steps = 0
        budget = make_budget_callback(p["max_seconds"])
        with quiet_transformers(quiet):
            self.body = self._load_body(resolve_model(p["model"]))
            # a SetFitModel built from the body (not from_pretrained: no head pickle is read)
            model = SetFitModel(model_body=self.body, multi_target_strategy="one-vs-rest")
            # setfit's sampler crashes (IndexError) when there are no positive or no negative
            # pairs, e.g. every issue shares a label: then there is nothing to contrast
            contrastable = _has_both_kinds_of_pairs(y)
            if contrastable:
                # device="cpu" must hold even where a GPU is visible (setfit's inner Trainer)
                with tempfile.TemporaryDirectory(prefix="labeler-setfit-") as tmp, \
                        accelerate_cpu(self.device == "cpu"):
                    args = TrainingArguments(
                        output_dir=tmp,
                        batch_size=int(p["batch_size"]),
                        num_epochs=int(p["epochs"]),
                        num_iterations=int(p["num_iterations"]),
                        body_learning_rate=float(p["body_learning_rate"]),
                        max_steps=int(p["max_steps"]) if p["max_steps"] else -1,
                        max_length=max_length,
                        seed=int(p["seed"]),
                        save_strategy="no",
                        eval_strategy="no",
                        logging_strategy="steps" if not quiet else "no",
                        show_progress_bar=not quiet,
                        report_to="none",
                    )
                    dataset = Dataset.from_dict({"text": list(texts), "label": y.astype(int).tolist()})
                    trainer = Trainer(model=model, args=args, train_dataset=dataset, callbacks=[budget])
                    if quiet:
                        from transformers import PrinterCallback

                        trainer.st_trainer.remove_callback(PrinterCallback)
                    # phase 1 only: the head is fitted below, per label, with no pickles involved
                    with _autocast_transformer(self.body, precision, self.device):
                        trainer.train_embeddings(list(texts), y.astype(int).tolist(), args=args)
                    steps = int(trainer.st_trainer.state.global_step)
                    del trainer
            self.body = model.model_body
            self.body.eval()

            # phase 2: the linear head, or one logistic regression per label that has both classes
            if p["head"] == "linear":
                self._fit_linear_head(full_texts, label_sets, valid)
            else:
                get_dim = getattr(self.body, "get_embedding_dimension", None) or self.body.get_sentence_embedding_dimension
                d = get_dim()
                self.coef = np.zeros((int(self.trained.sum()), d))
                self.intercept = np.zeros(int(self.trained.sum()))
                if self.trained.any():
                    emb = self._embed(texts)
                    for row, j in enumerate(np.flatnonzero(self.trained)):
                        lr = LogisticRegression(C=float(p["head_c"]), max_iter=int(p["head_max_iter"]))
                        lr.fit(emb, y[:, j])
                        self.coef[row] = lr.coef_[0]
                        self.intercept[row] = lr.intercept_[0]

        self.fitted_info = {
            "device": self.device,
            "n_train": len(texts),
            "steps": steps,
            "contrastive_phase": bool(contrastable),
            "precision": precision,
            "stopped_by_budget": bool(budget.stopped),
            "labels_with_head": int(self.trained.sum()),
            "constant_labels": [l for l, t in zip(self.labels, self.trained) if not t],
            "seconds": round(time.perf_counter() - started, 2),
        }
        if self.head_model is not None:
            self.fitted_info["head"] = {"linear": self.head_model.fitted_info}
        return self

    def _fit_linear_head(self, texts: Sequence[str], label_sets: LabelSets, valid: Labelled | None) -> None:
        """Save the tuned body to a temporary directory (removed with this object, or replaced
        by the bundle's own copy on loading) and fit ``linear`` on TF-IDF and its embeddings."""
        from labeler.strategies.linear import Linear

        self._body_dir = Path(tempfile.mkdtemp(prefix="labeler-setfit-body-"))
        weakref.finalize(self, shutil.rmtree, self._body_dir, True)
        self._save_body(self._body_dir)
        self.head_model = Linear(self.labels, self.descriptions, **self._linear_params(self._body_dir))
        self.head_model.fit(texts, label_sets, valid=valid)
        self.body = None  # the head's encoder reads the saved copy

    def out_of_fold(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The linear head's out-of-fold training scores (see :meth:`Linear.out_of_fold`;
        the body was tuned on all training issues, so they lean optimistic); ``None`` with
        setfit's own head."""
        return self.head_model.out_of_fold() if self.head_model is not None else None

    # -- scoring --------------------------------------------------------------------------
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if self.head_model is not None:
            return self.head_model.predict_proba(texts)
        if self.body is None:
            raise RuntimeError("setfit is not fitted")
        from scipy.special import expit

        texts = list(texts)
        out = np.tile(self.constant.astype(np.float64), (len(texts), 1))
        if texts and self.trained.any():
            emb = self._embed(texts)
            # LogisticRegression.predict_proba(emb)[:, 1] for every label at once
            out[:, self.trained] = expit(emb @ self.coef.T + self.intercept)
        return out

    # -- persistence: body via save_pretrained (safetensors), heads as arrays -------------
    def _save(self, directory: Path) -> None:
        if self.head_model is not None:
            shutil.copytree(self._body_dir, directory / "body")
            model = self.head_model.params["model"]
            self.head_model.params["model"] = "body"  # relative to this directory: _load resolves it
            try:
                self.head_model.save(directory / "linear")
            finally:
                self.head_model.params["model"] = model
            return
        if self.body is None:
            raise RuntimeError("setfit is not fitted")
        self._save_body(directory / "body")
        np.savez(directory / "head.npz", trained=self.trained, constant=self.constant,
                 coef=self.coef, intercept=self.intercept)
        (directory / "head.json").write_text(json.dumps({
            "kind": "one-vs-rest logistic regression",
            "labels_with_head": [l for l, t in zip(self.labels, self.trained) if t],
            "embedding_dim": int(self.coef.shape[1]) if self.coef.ndim == 2 else 0,
        }, indent=2))

    def _save_body(self, directory: Path) -> None:
        with quiet_transformers(not self.params.get("progress")):
            self.body.save_pretrained(str(directory), create_model_card=False, safe_serialization=True)
        if not any(directory.rglob("*.safetensors")):
            raise RuntimeError("the sentence-transformer body was not saved as safetensors")

    def _load(self, directory: Path) -> None:
        self.device = pick_device(self.params.get("device"))
        if (directory / "linear").is_dir():  # the linear head loads the body itself, when it first embeds
            from labeler.strategies.linear import Linear

            self.head_model = Linear.load(directory / "linear")
            self.head_model.params.update(model=str(directory / self.head_model.params["model"]), device=self.device)
            self._body_dir = directory / "body"
            return
        with quiet_transformers(not self.params.get("progress")):
            self.body = self._load_body(str(directory / "body"))
        self.body.eval()
        with np.load(directory / "head.npz", allow_pickle=False) as data:
            self.trained = data["trained"].astype(bool)
            self.constant = data["constant"].astype(np.float64)
            self.coef = data["coef"].astype(np.float64)
            self.intercept = data["intercept"].astype(np.float64)
        if self.trained.shape != (len(self.labels),) or self.coef.shape[0] != int(self.trained.sum()):
            raise ValueError(f"head.npz in {directory} does not match the {len(self.labels)} labels")


@contextlib.contextmanager
def _autocast_transformer(body, precision: str, device: str) -> Iterator[None]:
    """bf16 autocast (``precision == "bf16"``) for the body's transformer module only: its
    outputs (the token embeddings) come back as float32, so that mean pooling over up to
    ``max_length`` tokens, the normalisation and the cosine-similarity loss stay float32.
    Nothing for fp32. The module's own ``forward`` is restored afterwards."""
    if precision != "bf16":
        yield
        return
    import torch

    module = body[0]
    forward = module.forward

    def cast_forward(features, *args, **kwargs):
        with autocast(precision, device):
            out = forward(features, *args, **kwargs)
        return {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in out.items()}

    module.forward = cast_forward
    try:
        yield
    finally:
        del module.forward  # the class's forward again


def _has_both_kinds_of_pairs(y: np.ndarray) -> bool:
    """Whether setfit's multi-label sampler finds a positive pair (two issues, or one issue with
    itself, sharing a label) and a negative pair (two issues sharing none, or an issue with no
    label paired with itself)."""
    y = np.asarray(y, dtype=np.int64)
    if not y.any():
        return False
    shared = y @ y.T  # labels in common for every pair, self-pairs included
    return bool((shared == 0).any())
