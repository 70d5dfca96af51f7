"""Embedding k-nearest-neighbours (the book's kNN), with FAISS.

Training issues are encoded (:mod:`labeler.encoders`, normalised embeddings) into a FAISS
index: exact inner product (``IndexFlatIP``, i.e. cosine similarity) by default, an
approximate HNSW or IVF index above ``approx_threshold`` issues. When FAISS sees a GPU
(``faiss.get_num_gpus() > 0``, a faiss-gpu build) the index is moved there with
``StandardGpuResources``/``index_cpu_to_gpu``; otherwise, or if that fails (HNSW has no GPU
version), it stays on the CPU.

A query takes the k nearest training issues and counts, per label, how many of them carry
it; a label is predicted when it is seen at least m times. k and m are tuned on validation
over the book's grid (k = 1..16, m = 1..k) by micro F1.

Scores: ``predict_proba`` maps the vote count c (0..k) monotonically into [0, 1] so that
**score >= 0.5 exactly when c >= m**: ``0.5 * c / m`` below m, ``0.5 + 0.5 * (c - m) / (k - m)``
from m up, plus a tie-break smaller than one vote (a similarity-weighted vote over the
``k_max`` nearest issues; ``tiebreak="none"`` switches it off) so that labels with equal
counts are ordered for top-k and per-label rules. The default 0.5 threshold therefore reproduces "seen at least m times"; a decision
rule tuned by the bundle may still choose another cut (every cut is some vote count).

Neighbour metadata (for ``explain``): pass ``metadata=[{"number": 12, "title": ...}, ...]``,
one JSON-serialisable dict per training text, to ``fit`` or ``Bundle.train`` (the CLI passes
each issue's number, id and title). Missing ids default to the number, then the row number;
missing titles to the text's first line (cut to 200 characters). The bundle stores the index (``faiss.write_index``, from the CPU),
the neighbours' metadata (JSON) and the training label matrix (``.npz``).

Parameters (all optional, JSON values; validated by :class:`KNNParams`, which
``issue-labeler strategies --verbose`` lists):

=====================  ============  ============================================================
``model``              None          encoder: hub id or directory; None = embedded all-MiniLM-L6-v2
``device``             "auto"        torch device for encoding (cuda when available, else cpu)
``batch_size``         32            encoding batch size
``max_length``         128           tokens per issue (longer texts are truncated)
``quantize``           false         int8 encoder (CPU only, see :mod:`labeler.encoders`); "auto":
                                     int8 on a CPU with AVX-512 (stored resolved)
``k``, ``m``           None          fix k and/or m instead of tuning them
``k_max``              16            largest k tried when tuning (the book: k < 17)
``index``              "auto"        "flat", "hnsw", "ivf", or "auto" (flat up to approx_threshold)
``approx_threshold``   50000         training issues above which "auto" uses HNSW
``hnsw_m``             32            HNSW graph degree
``ef_search``          128           HNSW search depth
``nlist``              None          IVF cells (None: about 4 * sqrt(n))
``nprobe``             16            IVF cells visited per query
``use_gpu``            "auto"        "auto" (when FAISS sees a GPU), true, or false
``tiebreak``           "similarity"  order equal vote counts by a similarity-weighted vote over
                                     the k_max nearest issues ("none": pure counts, the book's)
=====================  ============  ============================================================
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

import numpy as np
from pydantic import Field, PositiveInt, field_validator

from labeler.encoders import get_encoder, resolve_quantize
from labeler.metrics import micro_f1
from labeler.strategies import register
from labeler.strategies.base import (Explanation, Labelled, LabelSets, Metadata, Neighbour, Strategy,
                                    StrategyParams)

log = logging.getLogger(__name__)

INDEX_FILE = "index.faiss"


class KNNParams(StrategyParams):
    model: Optional[str] = Field(None, description="encoder: hub id or directory; None = embedded all-MiniLM-L6-v2")
    device: str = Field("auto", description="torch device for encoding: auto (cuda when available), cpu, cuda, ...")
    batch_size: PositiveInt = Field(32, description="encoding batch size")
    max_length: PositiveInt = Field(128, description="tokens per issue (longer texts are truncated; 128 scored as 256 did on hf-datasets in half the time)")
    quantize: bool | Literal["auto"] = Field(False, description="int8 dynamic quantization of the encoder (CPU only); auto: int8 where the encoder runs on a CPU with AVX-512 (stored resolved)")
    k: Optional[PositiveInt] = Field(None, description="fix k (neighbours that vote) instead of tuning it")
    m: Optional[PositiveInt] = Field(None, description="fix m (votes a label needs) instead of tuning it")
    k_max: PositiveInt = Field(16, description="largest k tried when tuning (the book: k < 17)")
    index: Literal["auto", "flat", "hnsw", "ivf"] = Field(
        "auto", description="FAISS index; auto = flat up to approx_threshold issues, then hnsw")
    approx_threshold: int = Field(50000, ge=0, description="training issues above which index=auto uses HNSW")
    hnsw_m: PositiveInt = Field(32, description="HNSW graph degree")
    ef_search: PositiveInt = Field(128, description="HNSW search depth")
    nlist: Optional[PositiveInt] = Field(None, description="IVF cells (None: about 4 * sqrt(n))")
    nprobe: PositiveInt = Field(16, description="IVF cells visited per query")
    use_gpu: Literal["auto"] | bool = Field(
        "auto", description="put the index on the GPU: auto (when FAISS sees one), true or false")
    tiebreak: Literal["similarity", "none"] = Field(
        "similarity", description="order equal vote counts by a similarity-weighted vote over the k_max "
                                  "nearest issues; none = pure counts (the book's)")

    @field_validator("tiebreak", mode="before")
    @classmethod
    def _no_tiebreak(cls, value: Any) -> Any:
        return "none" if value in (None, False) else value  # spellings the strategy always took
#: without validation data (and no k/m given): the book's full-data choice, k=15, m=5,
#: scaled down to small training sets
DEFAULT_K, DEFAULT_M = 15, 5


def vote_scores(counts: np.ndarray, k: int, m: int, tiebreak: np.ndarray | None = None) -> np.ndarray:
    """Vote counts (0..k) to scores in [0, 1], monotone, with score >= 0.5 iff count >= m.

    ``tiebreak`` (values in [0, 1], same shape) orders labels with equal counts: it adds at
    most ``eps = 0.25 / (k + 1)``, less than the gap between two vote counts, so the order by
    count and the 0.5 cut are kept."""
    counts = np.asarray(counts, dtype=float)
    eps = 0.0 if tiebreak is None else 0.25 / (k + 1)
    low = 0.5 * counts / m
    high = 0.5 + (0.5 - eps) * (counts - m) / max(k - m, 1)
    scores = np.where(counts >= m, high, low)
    if tiebreak is not None:
        scores = scores + eps * np.clip(tiebreak, 0.0, 1.0)
    return np.clip(scores, 0.0, 1.0)


def build_index(vectors: np.ndarray, kind: str = "auto", *, approx_threshold: int = 50000,
                hnsw_m: int = 32, ef_search: int = 128, nlist: int | None = None, nprobe: int = 16):
    """A FAISS inner-product index over normalised ``vectors`` (on the CPU)."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, d = vectors.shape
    if kind == "auto":
        kind = "hnsw" if n > approx_threshold else "flat"
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, int(hnsw_m), faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = int(ef_search)
    elif kind == "ivf":
        cells = int(nlist) if nlist else max(1, int(4 * math.sqrt(n)))
        cells = max(1, min(cells, n // 39 if n >= 39 else 1))  # FAISS wants ~39 points per cell
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, cells, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        index.nprobe = min(int(nprobe), cells)
    else:
        raise ValueError(f"unknown index {kind!r}; use auto, flat, hnsw or ivf")
    index.add(vectors)
    return index


def to_gpu(index, use_gpu: str | bool = "auto"):
    """``(index, resources)``: the index moved to GPU 0 when asked and possible, with the
    ``StandardGpuResources`` that must outlive it; else ``(index, None)`` unchanged."""
    import faiss

    if use_gpu in (False, "false", "no", "off"):
        return index, None
    gpus = faiss.get_num_gpus()
    if gpus <= 0 or not hasattr(faiss, "StandardGpuResources"):
        if use_gpu in (True, "true", "yes", "on"):
            log.warning("use_gpu is set but FAISS sees no GPU (a faiss-cpu build?): the index stays on the CPU")
        return index, None
    try:
        resources = faiss.StandardGpuResources()
        return faiss.index_cpu_to_gpu(resources, 0, index), resources
    except Exception as exc:  # noqa: BLE001 - e.g. HNSW has no GPU version
        log.warning("could not move the FAISS index to the GPU (%s): staying on the CPU", exc)
        return index, None


def to_cpu(index):
    import faiss

    if hasattr(faiss, "index_gpu_to_cpu") and type(index).__name__.startswith("Gpu"):
        return faiss.index_gpu_to_cpu(index)
    return index


@register
class KNN(Strategy):
    __doc__ = __doc__
    name = "knn"

    Params = KNNParams

    def __init__(self, labels: Sequence[str], descriptions: dict[str, str] | None = None, **params):
        super().__init__(labels, descriptions, **params)
        if self.params["quantize"] == "auto":  # resolved once, so that it is saved as it was trained
            self.params["quantize"] = resolve_quantize("auto", self.params["device"])
        self._encoder = None
        self.index = None
        self.on_gpu = False
        self._gpu_resources = None
        self.y: np.ndarray = np.zeros((0, len(self.labels)), dtype=np.int8)
        #: what explain shows of each training issue: the metadata plus defaults and labels
        self.neighbour_info: list[dict[str, Any]] = []

    # -- pieces ---------------------------------------------------------------------------
    @property
    def encoder(self):
        """The encoder for these params (the process-wide shared one, fetched on first use and
        kept). To score without the embedding cache, use :func:`labeler.encoders.cache_disabled`."""
        if self._encoder is None:
            p = self.params
            self._encoder = get_encoder(p["model"], device=p["device"], batch_size=p["batch_size"],
                                        max_length=p["max_length"], quantize=bool(p["quantize"]))
        return self._encoder

    def _set_index(self, cpu_index) -> None:
        self.index, self._gpu_resources = to_gpu(cpu_index, self.params["use_gpu"])
        self.on_gpu = self._gpu_resources is not None
        self.fitted_info["index"] = type(cpu_index).__name__ + (" (GPU)" if self.on_gpu else "")

    def _neighbours(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, ids) of the k nearest training issues; ids are -1 past the end."""
        k = max(1, min(k, self.index.ntotal))
        sims, ids = self.index.search(np.ascontiguousarray(vectors, dtype=np.float32), k)
        return sims, ids

    def _counts(self, ids: np.ndarray, k: int) -> np.ndarray:
        """Label vote counts over the first k neighbours: shape (n, labels)."""
        ids = ids[:, :k]
        valid = ids >= 0
        votes = self.y[np.where(valid, ids, 0)].astype(np.int32) * valid[..., None]
        return votes.sum(axis=1)

    # -- training ---------------------------------------------------------------------------
    def fit(self, texts: Sequence[str], label_sets: LabelSets, *, valid: Labelled | None = None,
            unlabelled: Sequence[str] | None = None, metadata: Metadata | None = None) -> "KNN":
        if len(texts) == 0:
            raise ValueError("knn needs at least one labelled issue")
        if len(texts) != len(label_sets):
            raise ValueError(f"{len(texts)} texts but {len(label_sets)} label sets")
        if metadata is not None and len(metadata) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(metadata)} metadata entries")
        self.fitted_info = {}
        self.y = self.binarize(label_sets)
        self.neighbour_info = [self._meta(i, text, label_set, (metadata or [None] * len(texts))[i])
                         for i, (text, label_set) in enumerate(zip(texts, label_sets))]
        p = self.params
        vectors = self.encoder.encode(texts)
        self._set_index(build_index(vectors, p["index"], approx_threshold=p["approx_threshold"],
                                    hnsw_m=p["hnsw_m"], ef_search=p["ef_search"], nlist=p["nlist"],
                                    nprobe=p["nprobe"]))
        n = len(texts)
        k_fixed, m_fixed = p["k"], p["m"]
        if valid is not None and len(valid[0]) and (k_fixed is None or m_fixed is None):
            k, m, f1 = self._tune(valid, k_fixed, m_fixed)
            self.fitted_info["valid_micro_f1"] = round(f1, 4)
            self.fitted_info["tuned_on"] = "validation"
        else:
            k = int(k_fixed) if k_fixed is not None else min(DEFAULT_K, n)
            m = int(m_fixed) if m_fixed is not None else max(1, round(k * DEFAULT_M / DEFAULT_K))
            self.fitted_info["tuned_on"] = "parameters" if k_fixed is not None and m_fixed is not None else "defaults"
        k = max(1, min(k, n))
        m = max(1, min(m, k))
        self.fitted_info.update({"k": k, "m": m, "threshold": 0.5, "n_train": n,
                                 "vote_threshold": f"label seen in >= {m} of {k} neighbours"})
        return self

    def _tune(self, valid: Labelled, k_fixed, m_fixed) -> tuple[int, int, float]:
        texts, label_sets = valid
        y_valid = self.binarize(label_sets)
        k_top = int(k_fixed) if k_fixed is not None else int(self.params["k_max"])
        _, ids = self._neighbours(self.encoder.encode(texts), k_top)
        k_range = [min(int(k_fixed), ids.shape[1])] if k_fixed is not None else range(1, ids.shape[1] + 1)
        best = (1, 1, -1.0)
        for k in k_range:
            counts = self._counts(ids, k)
            m_range = [min(int(m_fixed), k)] if m_fixed is not None else range(1, k + 1)
            for m in m_range:
                f1 = micro_f1(y_valid, (counts >= m).astype(np.int8))
                if f1 > best[2] + 1e-12:  # ties keep the smaller k, then the smaller m
                    best = (k, m, f1)
        return best

    def _meta(self, i: int, text: str, label_set, given: dict[str, Any] | None) -> dict[str, Any]:
        meta = dict(given or {})
        if "id" not in meta:
            meta["id"] = meta.get("number", i)
        if "title" not in meta:
            meta["title"] = (text or "").strip().split("\n", 1)[0][:200]
        meta["labels"] = [label for label in self.labels if label in set(label_set)]
        return meta

    # -- scoring ----------------------------------------------------------------------------
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if self.index is None:
            raise RuntimeError("knn is not fitted")
        if len(texts) == 0:
            return np.zeros((0, len(self.labels)))
        k, m = self.fitted_info["k"], self.fitted_info["m"]
        sims, ids = self._neighbours(self.encoder.encode(texts), max(k, int(self.params["k_max"])))
        return vote_scores(self._counts(ids, k), k, m, self._tiebreak(sims, ids))

    def _tiebreak(self, sims: np.ndarray, ids: np.ndarray) -> np.ndarray | None:
        """Similarity-weighted label vote over the k_max nearest issues, in [0, 1]: orders
        labels with equal counts (and those with no vote among the k) for top-k and
        per-label decisions, without changing "seen at least m times"."""
        if self.params["tiebreak"] == "none":
            return None
        weights = np.where(ids >= 0, np.clip(sims, 0.0, None), 0.0)
        votes = np.einsum("nk,nkl->nl", weights, self.y[np.where(ids >= 0, ids, 0)].astype(float))
        return votes / np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)

    def explain(self, text: str) -> Explanation:
        """Scores, the k nearest training issues (id/number, title, labels, similarity),
        nearest first, and in ``details`` the votes per label, k and m."""
        if self.index is None:
            raise RuntimeError("knn is not fitted")
        k, m = self.fitted_info["k"], self.fitted_info["m"]
        sims, ids = self._neighbours(self.encoder.encode([text]), max(k, int(self.params["k_max"])))
        counts = self._counts(ids, k)[0]
        scores = vote_scores(counts[None], k, m, self._tiebreak(sims, ids))[0]
        neighbours = [Neighbour.from_record(self.neighbour_info[i], round(float(sim), 4))
                      for sim, i in zip(sims[0, :k], ids[0, :k]) if i >= 0]
        return Explanation(scores=dict(zip(self.labels, map(float, scores))), neighbours=neighbours,
                           details={"votes": {label: int(c) for label, c in zip(self.labels, counts)},
                                    "k": k, "m": m})

    # -- persistence ----------------------------------------------------------------------
    def _save(self, directory: Path) -> None:
        import faiss

        if self.index is None:
            raise RuntimeError("knn is not fitted")
        faiss.write_index(to_cpu(self.index), str(directory / INDEX_FILE))
        np.savez_compressed(directory / "labels.npz", y=self.y)
        (directory / "neighbours.json").write_text(json.dumps(self.neighbour_info, ensure_ascii=False))

    def _load(self, directory: Path) -> None:
        import faiss

        cpu_index = faiss.read_index(str(directory / INDEX_FILE))
        self._set_index(cpu_index)
        with np.load(directory / "labels.npz", allow_pickle=False) as data:
            self.y = data["y"]
        self.neighbour_info = json.loads((directory / "neighbours.json").read_text())
        if self.index.ntotal != len(self.y) or len(self.neighbour_info) != len(self.y):
            raise ValueError(f"{directory}: index, labels and metadata disagree in size")
