"""Sentence encoders with an on-disk embedding cache.

:class:`Encoder` turns texts into mean-pooled, L2-normalised sentence embeddings with
sentence-transformers. A model is named as in :func:`labeler.hf.resolve_model`: ``None``
or ``"default"`` for the embedded all-MiniLM-L6-v2, a local directory, or a hub id (which must
be in the local Hugging Face cache when the hub is unreachable). The device is CUDA when torch
sees it, else CPU, unless ``device`` says otherwise.

Every embedding is cached on disk, keyed by the model's identity (its resolved location, a
fingerprint of its files and ``max_length``) and the SHA-256 of the text, so repeated
experiments never encode the same issue twice, and a run where everything is cached does not
even load the model. The cache is one SQLite file (float32 bytes, no pickles) under
``~/.cache/issue-labeler/embeddings``; set ``ISSUE_LABELER_CACHE`` to move it, or to ``off``
to disable it (``cache=False`` does the same for one encoder). ``with cache_disabled():``
switches it off for the code inside the block (this thread or task only), for every encoder,
including those that strategies hold: e.g. to time predictions as a new issue would cost them.

``quantize=True`` converts the model's linear layers to int8 (PyTorch dynamic quantization,
a CPU feature, so the encoder then runs on the CPU whatever ``device`` says): on 2 cores it
encodes an issue of 128 tokens in about 8 ms instead of 22, with embeddings that differ from
the float ones (cosine about 0.94), so a model trained on one kind must be served with the
same kind. It is part of the cache key. Strategies take ``quantize="auto"`` as well
(:func:`resolve_quantize`: int8 where the encoder would run on a CPU with AVX-512, float on
other CPUs, where int8 gained little, and on a GPU) and store what it resolved to, so a bundle
is served as it was trained.

Very long texts are cut by :func:`labeler.hf.truncate_chars` before tokenizing (the tokenizer
truncates to ``max_length`` tokens anyway; the cut only saves tokenizing 200,000 characters),
and the empty text is encoded like any other. Model resolution, the device and truncation
come from :mod:`labeler.hf`; this module holds only the encoder and its cache.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from labeler.errors import ModelNotAvailableError
from labeler import hf
from labeler.hf import DEFAULT_ENCODER, pick_device, position_limit, resolve_model, truncate_chars
from labeler.lru import LRU

log = logging.getLogger(__name__)

#: environment variable naming the cache directory (or ``off``)
CACHE_ENV = "ISSUE_LABELER_CACHE"
#: encode at least this many uncached texts before a progress bar is shown
PROGRESS_MIN = 256

#: loaded sentence-transformers models, shared by the encoders of this process
_MODELS: LRU[tuple[str, str], Any] = LRU(maxsize=4)
#: model directory fingerprints by (directory, newest file time)
_FINGERPRINTS: LRU[tuple[str, float], str] = LRU(maxsize=64)
#: encoders handed out by get_encoder
_ENCODERS: LRU[tuple, "Encoder"] = LRU(maxsize=8)
#: set by cache_disabled(): read and write no embedding cache in this context
_CACHE_OFF: contextvars.ContextVar[bool] = contextvars.ContextVar("issue_labeler_cache_off", default=False)
#: set by shared_embeddings(): embeddings computed in this context, by (encoder key, text hash)
_MEMO: contextvars.ContextVar[dict | None] = contextvars.ContextVar("issue_labeler_embedding_memo", default=None)


@contextlib.contextmanager
def cache_disabled() -> Iterator[None]:
    """Within the block, encoders neither read nor write the embedding cache: every text is
    encoded by the model. Scoped to the current thread (or asyncio task) through a context
    variable, so other threads keep their cache; nothing global is changed."""
    token = _CACHE_OFF.set(True)
    try:
        yield
    finally:
        _CACHE_OFF.reset(token)


@contextlib.contextmanager
def shared_embeddings() -> Iterator[None]:
    """Within the block, a text that one encoder has embedded is not embedded again by the same
    model, even with the disk cache off: an ensemble whose members read the same encoder (auto's
    ``linear`` on embeddings, ``knn``, ``linear`` on both) encodes a new issue once, not once per
    member. The memo lives in memory for the block only (this thread or task)."""
    if _MEMO.get() is not None:  # nested: the outer block's memo serves
        yield
        return
    token = _MEMO.set({})
    try:
        yield
    finally:
        _MEMO.reset(token)


def cache_active() -> bool:
    """False inside :func:`cache_disabled`."""
    return not _CACHE_OFF.get()


def cache_dir() -> Path | None:
    """The embedding cache directory, or ``None`` when caching is switched off."""
    value = os.environ.get(CACHE_ENV)
    if value and value.lower() in ("off", "0", "false", "none"):
        return None
    if value:
        return Path(value).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "issue-labeler" / "embeddings"


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def model_fingerprint(path: str) -> str:
    """A hash of a model directory's files (names, sizes, and the content of everything but
    large weight files, which count by size and a hash of their first and last MiB).
    A hub id that is not a directory counts by its name."""
    root = Path(path)
    if not root.is_dir():
        return hashlib.sha256(path.encode()).hexdigest()
    stamp = max((p.stat().st_mtime for p in root.rglob("*") if p.is_file()), default=0.0)
    return _FINGERPRINTS.get_or_create((str(root.resolve()), stamp), lambda: _hash_directory(root))


def _hash_directory(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        rel = p.relative_to(root).as_posix()
        if rel.startswith(".") or "/." in rel or rel.endswith(".md"):
            continue  # caches, locks and READMEs do not change the embeddings
        size = p.stat().st_size
        h.update(f"{rel}\0{size}\0".encode())
        with p.open("rb") as f:
            if size <= 4 << 20:
                h.update(f.read())
            else:
                h.update(f.read(1 << 20))
                f.seek(-(1 << 20), os.SEEK_END)
                h.update(f.read())
    return h.hexdigest()


class EmbeddingCache:
    """Embeddings by (model key, text hash) in one SQLite file; safe across processes."""

    def __init__(self, directory: str | Path):
        self.path = Path(directory) / "embeddings.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
        self._lock = threading.Lock()  # one connection, shared by a worker's threads
        with self._conn:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("CREATE TABLE IF NOT EXISTS emb (model TEXT NOT NULL, text TEXT NOT NULL, "
                               "dim INTEGER NOT NULL, vec BLOB NOT NULL, PRIMARY KEY (model, text))")

    def get(self, model: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(hashes))
        for start in range(0, len(unique), 500):
            chunk = unique[start:start + 500]
            marks = ",".join("?" * len(chunk))
            with self._lock:
                rows = self._conn.execute(f"SELECT text, dim, vec FROM emb WHERE model = ? AND text IN ({marks})",
                                          [model, *chunk]).fetchall()
            for text, dim, vec in rows:
                arr = np.frombuffer(vec, dtype=np.float32)
                if arr.shape[0] == dim:
                    found[text] = arr
        return found

    def put(self, model: str, hashes: Sequence[str], vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        rows = [(model, h, int(v.shape[0]), v.tobytes()) for h, v in zip(hashes, vectors)]
        with self._lock, self._conn:
            self._conn.executemany("INSERT OR REPLACE INTO emb VALUES (?, ?, ?, ?)", rows)

    def close(self) -> None:
        self._conn.close()


class Encoder:
    """Mean-pooled, normalised sentence embeddings of texts, cached on disk.

    ``model``: hub id, local directory, or ``None``/``"default"`` for the embedded
    all-MiniLM-L6-v2. ``device``: ``None``/``"auto"`` (CUDA if available, else CPU) or any
    torch device string. ``batch_size`` and ``max_length`` (tokens; longer texts are
    truncated) are passed to sentence-transformers. ``cache``: ``True`` uses
    :func:`cache_dir`, ``False`` disables caching, a path puts the cache there.
    ``progress``: ``None`` shows a tqdm bar only when many texts need encoding.

    A model that is neither a directory nor available from the hub (or its cache, offline)
    raises :class:`~labeler.errors.ModelNotAvailableError` at construction.
    """

    def __init__(self, model: str | os.PathLike | None = None, *, device: str | None = None,
                 batch_size: int = 32, max_length: int = 256, cache: bool | str | os.PathLike = True,
                 progress: bool | None = None, quantize: bool = False):
        self.name = str(model) if model is not None else DEFAULT_ENCODER
        self.path = resolve_model(model)
        self.quantize = bool(quantize)
        if self.quantize and device not in (None, "cpu"):
            log.warning("quantize: the int8 encoder runs on the CPU, not on %s", device)
        self.device = "cpu" if self.quantize else pick_device(device)  # int8 dynamic quantization runs on CPU
        self.batch_size = int(batch_size)
        self.max_length = int(max_length)
        self.progress = progress
        if self.batch_size < 1 or self.max_length < 1:
            raise ValueError("batch_size and max_length must be positive")
        self.key = hashlib.sha256(
            # the truncation rule is part of the key: a cache written under another rule is not reused
            f"{model_fingerprint(self.path)}|max_length={self.max_length}|cut={hf.CHARS_PER_TOKEN}|mean|l2"
            f"{'|int8' if self.quantize else ''}".encode()
        ).hexdigest()[:32]
        directory = cache_dir() if cache is True else (Path(cache) if cache else None)
        self.cache: EmbeddingCache | None = None
        if directory is not None:
            try:
                self.cache = EmbeddingCache(directory)
            except (OSError, sqlite3.Error) as exc:  # read-only home, full disk: encode anyway
                log.warning("embedding cache %s unusable (%s): encoding without a cache", directory, exc)
        self._dim: int | None = None
        #: counters for callers and tests: texts encoded by the model vs found in the cache
        self.stats = {"encoded": 0, "cached": 0}

    # -- the model, loaded on first need and shared by encoders in this process -----------
    @property
    def model(self):
        return _MODELS.get_or_create((self.key, self.device), self._load)

    def _load(self):
        from sentence_transformers import SentenceTransformer

        try:
            model = SentenceTransformer(self.path, device=self.device)
        except Exception as exc:  # noqa: BLE001 - one clear message for a broken model dir
            raise ModelNotAvailableError(
                f"could not load the encoder {self.name!r} from {self.path}: {type(exc).__name__}: {exc}. "
                "Point the model parameter at a local sentence-transformers or transformers model "
                "directory, or leave it unset for the embedded all-MiniLM-L6-v2.") from None
        limit = position_limit(getattr(getattr(model[0], "auto_model", None), "config", None))
        if limit and self.max_length > limit:
            log.warning("max_length %d is more than %s takes; using %d", self.max_length, self.name, limit)
        model.max_seq_length = min(self.max_length, limit or self.max_length)
        if self.quantize:
            import warnings

            import torch

            with warnings.catch_warnings():  # deprecated in favour of torchao, still in the pinned torch
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", UserWarning)
                try:
                    from torch.ao.quantization import quantize_dynamic
                except ImportError:
                    raise ModelNotAvailableError(f"torch {torch.__version__} has no torch.ao.quantization.quantize_dynamic: "
                                                 f"leave quantize off for the encoder {self.name!r}") from None
                quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
        return model

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.model.encode([""], normalize_embeddings=True, show_progress_bar=False).shape[1])
        return self._dim

    # -- encoding ---------------------------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts``: float32, shape ``(len(texts), dim)``, rows of unit norm."""
        texts = ["" if t is None else str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        hashes = [text_hash(t) for t in texts]
        memo = _MEMO.get()
        known = memo.setdefault(self.key, {}) if memo is not None else {}
        cache = self.cache if cache_active() else None
        found = {h: known[h] for h in hashes if h in known}
        if cache is not None and len(found) < len(set(hashes)):
            found.update(cache.get(self.key, [h for h in hashes if h not in found]))
        todo: dict[str, str] = {}
        for h, t in zip(hashes, texts):
            if h not in found and h not in todo:
                todo[h] = t
        self.stats["cached"] += len(texts) - sum(1 for h in hashes if h in todo)
        if todo:
            found.update(self._encode_new(list(todo), list(todo.values())))
        if memo is not None:
            known.update(found)
        out = np.stack([found[h] for h in hashes]).astype(np.float32, copy=False)
        self._dim = out.shape[1]
        return out

    def _encode_new(self, hashes: list[str], texts: list[str]) -> dict[str, np.ndarray]:
        from tqdm.auto import tqdm

        texts = [truncate_chars(t, self.max_length) for t in texts]
        show = self.progress if self.progress is not None else len(texts) >= PROGRESS_MIN
        # chunks of several batches: the cache keeps what was done if a long run is stopped
        chunk = self.batch_size * 8
        out: dict[str, np.ndarray] = {}
        model = self.model
        with tqdm(total=len(texts), desc=f"encoding ({self.name})", unit="text",
                  disable=not show) as bar:
            for start in range(0, len(texts), chunk):
                part = texts[start:start + chunk]
                vecs = model.encode(part, batch_size=self.batch_size, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)
                vecs = np.asarray(vecs, dtype=np.float32)
                if self.cache is not None and cache_active():
                    try:
                        self.cache.put(self.key, hashes[start:start + chunk], vecs)
                    except sqlite3.Error as exc:
                        log.warning("could not write to the embedding cache (%s): not caching", exc)
                        self.cache = None
                out.update(zip(hashes[start:start + chunk], vecs))
                self.stats["encoded"] += len(part)
                bar.update(len(part))
        return out


def fast_int8_cpu() -> bool:
    """Whether this CPU should run int8 dynamic quantization: torch's CPU capability is AVX-512.
    On an AVX2-only CPU (AMD EPYC, family 23) the int8 MiniLM was 0-15% faster than float, not
    worth the embeddings' small loss of accuracy; on an AVX-512 one (AMD EPYC, family 26) the
    served int8 `linear [both]` took 10 ms per issue against 19 for float, in batches of 64
    (experiments/results/latency-amd-epyc-avx512.json)."""
    import torch

    return torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def resolve_quantize(quantize: bool | str, device: str | None = None) -> bool:
    """A strategy's ``quantize`` parameter as the bool an :class:`Encoder` takes: ``"auto"``
    is int8 where the encoder would run on a CPU (``device`` cpu, or no CUDA) that runs int8
    fast (:func:`fast_int8_cpu`), else float (int8 dynamic quantization does not run on a GPU)."""
    if quantize == "auto":
        return pick_device(device) == "cpu" and fast_int8_cpu()
    return bool(quantize)


def get_encoder(model: str | os.PathLike | None = None, *, device: str | None = None, batch_size: int = 32,
                max_length: int = 256, cache: bool | str = True, quantize: bool = False) -> Encoder:
    """An :class:`Encoder`, shared between callers in this process that ask for the same one
    (so a bot or a benchmark loads each model once). The most recently used eight are kept."""
    key = (str(model) if model is not None else None, pick_device(device), int(batch_size), int(max_length),
           str(cache_dir()) if cache is True else str(cache), bool(quantize))
    return _ENCODERS.get_or_create(key, lambda: Encoder(model, device=device, batch_size=batch_size,
                                                        max_length=max_length, cache=cache, quantize=quantize))
