"""Small helpers shared by the strategies that train transformers (``finetune``, ``setfit``):
device choice with a clean CPU fallback, a wall-clock budget callback for the Trainer, and
quiet logging while training.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from typing import Iterator

from labeler.models import pick_device

log = logging.getLogger(__name__)


def resolve_device(requested: str | None) -> str:
    """``pick_device`` plus a fallback: asking for CUDA (or MPS) where torch cannot use it
    gives a warning and the CPU instead of a crash deep inside training."""
    import torch

    device = pick_device(requested)
    if device.startswith("cuda") and not torch.cuda.is_available():
        warnings.warn(f"device {device!r} requested but torch sees no CUDA GPU; using the CPU", stacklevel=3)
        return "cpu"
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        warnings.warn("device 'mps' requested but it is not available; using the CPU", stacklevel=3)
        return "cpu"
    return device


def truncate_chars(text: str | None, max_length: int) -> str:
    """``None`` -> ``""``; texts far longer than ``max_length`` tokens could ever need are cut
    before tokenising (64 characters per token is generous), so a 200,000-character log paste
    costs no more than a normal issue. The tokenizer still truncates to ``max_length`` tokens."""
    text = text or ""
    return text[: max(64 * int(max_length), 1024)]


def save_safetensors(model, directory) -> None:
    """``model.save_pretrained(directory)`` in safetensors. transformers 5 always writes
    safetensors and dropped the ``safe_serialization`` argument; 4.x needs it (default True
    there too, passed explicitly so a changed default cannot produce a pickle)."""
    import inspect
    from pathlib import Path

    kwargs = {}
    if "safe_serialization" in inspect.signature(model.save_pretrained).parameters:
        kwargs["safe_serialization"] = True
    model.save_pretrained(str(directory), **kwargs)
    if not any(Path(directory).glob("*.safetensors")):
        raise RuntimeError(f"save_pretrained wrote no safetensors file in {directory}")


def transformers_major() -> int:
    import transformers

    return int(transformers.__version__.split(".")[0])


def make_budget_callback(max_seconds: float | None, *, evaluate_on_stop: bool = False):
    """A ``transformers.TrainerCallback`` that stops training once ``max_seconds`` of wall-clock
    time have passed since ``on_train_begin`` (checked after every optimiser step). With
    ``evaluate_on_stop`` (for a step-based evaluation strategy) the weights reached when the
    budget runs out are evaluated and checkpointed too, so they compete for "best" like the
    others."""
    from transformers import TrainerCallback

    class WallClockBudget(TrainerCallback):
        def __init__(self) -> None:
            self.max_seconds = max_seconds
            self.started = time.monotonic()
            self.stopped = False

        def on_train_begin(self, args, state, control, **kwargs):
            self.started = time.monotonic()

        def on_step_end(self, args, state, control, **kwargs):
            if self.max_seconds is not None and time.monotonic() - self.started >= self.max_seconds:
                if not control.should_training_stop:
                    self.stopped = True
                    control.should_training_stop = True
                    if evaluate_on_stop:
                        control.should_evaluate = True
                        control.should_save = True
            return control

    return WallClockBudget()


@contextlib.contextmanager
def accelerate_cpu(enabled: bool) -> Iterator[None]:
    """Make a Trainer that this code does not construct itself (setfit builds its own
    sentence-transformers Trainer) stay on the CPU even where a GPU is visible: transformers
    and accelerate honour ``ACCELERATE_USE_CPU``. Restored afterwards."""
    import os

    if not enabled:
        yield
        return
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
