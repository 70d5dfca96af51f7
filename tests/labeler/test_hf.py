"""labeler.hf: the one module for model resolution, the device, truncation and training helpers."""

from __future__ import annotations

import os
import types
from pathlib import Path

import numpy as np
import pytest

from labeler import hf
from labeler.errors import ModelNotAvailableError


def test_old_homes_are_gone():
    # (checked on disk: an editable install of another checkout could still import them)
    import labeler
    import labeler.encoders as encoders

    root = Path(labeler.__file__).parent
    assert not (root / "models.py").exists() and not (root / "strategies" / "_hf.py").exists()

    assert not hasattr(encoders, "CHARS_PER_TOKEN")  # one truncation rule, in labeler.hf


def test_truncate_chars_is_one_rule():
    assert hf.truncate_chars(None, 128) == ""
    assert hf.truncate_chars("short", 128) == "short"
    assert len(hf.truncate_chars("x" * 200_000, 128)) == hf.CHARS_PER_TOKEN * 128
    assert len(hf.truncate_chars("x" * 200_000, 2)) == hf.MIN_CHARS


def test_encoder_keeps_tokens_after_long_whitespace(tiny_bert):
    """Indented code and log pastes: 300 spaces make no token, so the words after them are
    within max_length tokens and must not be cut off before tokenizing (the encoder's old
    16-characters-per-token cut dropped them)."""
    from labeler.encoders import Encoder

    enc = Encoder(tiny_bert, device="cpu", max_length=16, cache=False)
    spaced, plain, head = enc.encode(["crash " + " " * 300 + "loading", "crash loading", "crash"])
    np.testing.assert_allclose(spaced, plain, atol=1e-5)
    assert not np.allclose(spaced, head, atol=1e-3)


def test_pick_device():
    assert hf.pick_device("cpu") == "cpu"
    assert hf.pick_device(None) in ("cpu", "cuda")
    assert hf.pick_device("auto") == hf.pick_device(None)
    import torch

    if torch.cuda.is_available():
        assert hf.pick_device("cuda:0") == "cuda:0"
    else:
        with pytest.warns(UserWarning, match="no CUDA"):
            assert hf.pick_device("cuda:1") == "cpu"


def test_resolve_model(tmp_path, tiny_bert):
    assert hf.resolve_model(None) == hf.resolve_model("default") == hf.default_encoder_path()
    assert hf.resolve_model(tiny_bert) == str(tiny_bert)
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        hf.resolve_model(tmp_path / "nothing")
    with pytest.raises(ModelNotAvailableError, match="nobody/nothing"):
        hf.resolve_model("nobody/nothing")


def test_position_limit():
    assert hf.position_limit(types.SimpleNamespace(max_position_embeddings=512, model_type="bert")) == 512
    assert hf.position_limit(types.SimpleNamespace(max_position_embeddings=514, model_type="roberta")) == 512
    assert hf.position_limit(None) is None


def test_accelerate_cpu_restores_the_environment(monkeypatch):
    monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)
    with hf.accelerate_cpu(True):
        assert os.environ["ACCELERATE_USE_CPU"] == "true"
    assert "ACCELERATE_USE_CPU" not in os.environ
    with hf.accelerate_cpu(False):
        assert "ACCELERATE_USE_CPU" not in os.environ


def test_native_bf16_reads_the_cpu_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n")
    assert hf.native_bf16("cpu", cpuinfo=info)
    info.write_text("flags\t\t: fpu sse2 amx_tile amx_bf16\n")
    assert hf.native_bf16("cpu", cpuinfo=info)
    info.write_text("flags\t\t: fpu sse2 avx2 avx512f avx512bw\n")  # AVX-512 without BF16: emulated, slow
    assert not hf.native_bf16("cpu", cpuinfo=info)
    assert not hf.native_bf16("cpu", cpuinfo=tmp_path / "absent")  # not Linux
    assert not hf.native_bf16("mps")


def test_resolve_precision(monkeypatch):
    monkeypatch.setattr(hf, "native_bf16", lambda device: True)
    assert hf.resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(hf, "native_bf16", lambda device: False)
    assert hf.resolve_precision("auto", "cpu") == "fp32"
    assert hf.resolve_precision("bf16", "cpu") == "bf16"  # asked for: honoured even where it is emulated
    assert hf.resolve_precision("fp32", "cuda") == "fp32"
    with pytest.raises(ValueError, match="auto, fp32 or bf16"):
        hf.resolve_precision("fp16", "cpu")


def test_autocast_is_bf16_or_nothing():
    import torch

    with hf.autocast("bf16", "cpu"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with hf.autocast("fp32", "cpu"):
        assert not torch.is_autocast_enabled("cpu")
    assert not torch.is_autocast_enabled("cpu")


def test_save_safetensors(tmp_path, tiny_bert):
    from transformers import AutoModel

    hf.save_safetensors(AutoModel.from_pretrained(tiny_bert), tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").is_file()
