"""Encoders: normalised embeddings, the on-disk cache, bad inputs, missing models."""

from __future__ import annotations

import numpy as np
import pytest

from labeler.encoders import CACHE_ENV, Encoder, cache_dir, get_encoder
from labeler.errors import ModelNotAvailableError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_embeddings_are_normalised(tiny_bert):
    enc = Encoder(tiny_bert, device="cpu")
    vecs = enc.encode(["crash when loading", "docs are unclear", ""])
    assert vecs.shape == (3, 32) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    assert enc.encode([]).shape == (0, 32)


def test_cache_avoids_encoding_twice(tiny_bert, _cache):
    texts = ["crash when loading", "docs are unclear", "crash when loading"]
    first = Encoder(tiny_bert, device="cpu")
    a = first.encode(texts)
    assert first.stats == {"encoded": 2, "cached": 0}  # the duplicate is encoded once
    assert (_cache / "embeddings.sqlite").is_file()
    second = Encoder(tiny_bert, device="cpu")
    b = second.encode(texts + ["a new one"])
    assert second.stats == {"encoded": 1, "cached": 3}
    np.testing.assert_array_equal(a, b[:3])
    # a different max_length is a different model identity
    assert Encoder(tiny_bert, device="cpu", max_length=16).key != first.key


def test_cache_can_be_switched_off(tiny_bert, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, "off")
    assert cache_dir() is None
    enc = Encoder(tiny_bert, device="cpu")
    assert enc.cache is None
    enc.encode(["x"])
    enc.encode(["x"])
    assert enc.stats["encoded"] == 2


def test_unusable_cache_is_not_fatal(tiny_bert, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    enc = Encoder(tiny_bert, device="cpu", cache=blocker / "cache")
    assert enc.cache is None and enc.encode(["x"]).shape == (1, 32)


def test_long_and_odd_texts(tiny_bert):
    enc = Encoder(tiny_bert, device="cpu", max_length=32, cache=False, progress=True)
    vecs = enc.encode(["word " * 40_000, "", "   ", "ünïcödé 🐛"])
    assert vecs.shape == (4, 32) and np.isfinite(vecs).all()


def test_max_length_beyond_the_model_is_clamped(tiny_bert):
    enc = Encoder(tiny_bert, device="cpu", max_length=1000, cache=False)
    assert enc.encode(["word " * 2000]).shape == (1, 32)  # tiny_bert has 160 positions
    assert enc.model.max_seq_length == 160


def test_get_encoder_is_shared(tiny_bert):
    assert get_encoder(str(tiny_bert), device="cpu") is get_encoder(str(tiny_bert), device="cpu")


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        Encoder(tmp_path / "no-such-model")
    with pytest.raises(ModelNotAvailableError, match="local-dir"):
        Encoder("nobody/no-such-encoder")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    with pytest.raises(ModelNotAvailableError, match="broken"):
        Encoder(broken, cache=False).encode(["x"])


def test_one_encoder_used_from_threads(tiny_bert):
    from concurrent.futures import ThreadPoolExecutor

    enc = Encoder(tiny_bert, device="cpu")
    batches = [[f"issue {i} {j}" for j in range(5)] for i in range(8)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(enc.encode, batches))
    for batch, vecs in zip(batches, results):
        np.testing.assert_allclose(vecs, Encoder(tiny_bert, device="cpu").encode(batch), atol=1e-5)


def test_cache_disabled_is_scoped_and_changes_no_environment(tiny_bert, _cache):
    import os
    import threading

    from labeler.encoders import cache_active, cache_disabled

    enc = Encoder(tiny_bert, device="cpu")
    enc.encode(["crash when loading"])
    env = dict(os.environ)
    seen_in_thread = []
    with cache_disabled():
        assert not cache_active()
        enc.encode(["crash when loading", "never cached"])
        thread = threading.Thread(target=lambda: seen_in_thread.append(cache_active()))
        thread.start()
        thread.join()
    assert cache_active() and seen_in_thread == [True]  # other threads keep their cache
    assert dict(os.environ) == env
    assert enc.stats == {"encoded": 3, "cached": 0}
    enc.encode(["crash when loading", "never cached"])
    assert enc.stats["cached"] == 1  # nothing was written inside the block


def test_module_caches_are_bounded_lrus(tiny_bert, tmp_path):
    from labeler import encoders

    encoders._ENCODERS.clear()
    made = [get_encoder(str(tiny_bert), device="cpu", max_length=8 + i, cache=False)
            for i in range(encoders._ENCODERS.maxsize + 3)]
    assert len(encoders._ENCODERS) == encoders._ENCODERS.maxsize
    assert get_encoder(str(tiny_bert), device="cpu", max_length=8 + len(made) - 1, cache=False) is made[-1]
    assert get_encoder(str(tiny_bert), device="cpu", max_length=8, cache=False) is not made[0]  # evicted
    assert made[0].encode(["still usable"]).shape == (1, 32)
    assert encoders._MODELS.maxsize <= 4 and encoders._FINGERPRINTS.maxsize <= 64


def test_lru_is_thread_safe_and_loads_once():
    import threading
    import time

    from labeler.lru import LRU

    cache = LRU(maxsize=2)
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.05)
        return object()

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get_or_create("a", slow))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len({id(r) for r in results}) == 1
    cache.get_or_create("b", object)
    cache.get_or_create("a", object)  # "a" is now the most recent
    cache.get_or_create("c", object)  # evicts "b"
    assert "a" in cache and "b" not in cache and len(cache) == 2
    with pytest.raises(ValueError):
        LRU(maxsize=0)


def test_shared_embeddings_encode_each_text_once_per_block(tiny_bert):
    """With the disk cache off, two encoders of one model inside shared_embeddings() encode a
    text once (an auto ensemble's members); outside the block, and for another model identity,
    nothing is shared."""
    from labeler.encoders import cache_disabled, shared_embeddings

    first, second = Encoder(tiny_bert, device="cpu"), Encoder(tiny_bert, device="cpu")
    other = Encoder(tiny_bert, device="cpu", max_length=16)
    with cache_disabled():
        with shared_embeddings():
            a = first.encode(["crash when loading", "docs"])
            with shared_embeddings():  # nested: the outer memo serves
                b = second.encode(["docs", "crash when loading"])
            other.encode(["docs"])
        assert first.stats["encoded"] == 2 and second.stats == {"encoded": 0, "cached": 2}
        assert other.stats["encoded"] == 1
        np.testing.assert_array_equal(a[::-1], b)
        second.encode(["docs"])  # the block is over: encoded again
        assert second.stats["encoded"] == 1


def test_quantized_encoder_is_a_cpu_model_of_its_own(tiny_bert):
    """int8 dynamic quantization: unit-norm embeddings of the same size, on the CPU whatever
    device was asked for, under a cache key (and a shared model) apart from the float one's."""
    import torch

    texts = ["pip install fails on windows", "add a dark theme", ""]
    plain, quantized = Encoder(tiny_bert, cache=False), Encoder(tiny_bert, cache=False, quantize=True, device="cuda")
    vectors = quantized.encode(texts)
    assert vectors.shape == plain.encode(texts).shape
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert quantized.device == "cpu" and quantized.key != plain.key
    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in quantized.model.modules())
    assert not any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in plain.model.modules())
    assert get_encoder(tiny_bert, quantize=True) is not get_encoder(tiny_bert)


def test_resolve_quantize_int8_only_where_the_cpu_runs_it_fast(monkeypatch):
    """``quantize="auto"``: int8 on a CPU whose torch capability is AVX-512, float on an
    AVX2-only CPU and on a GPU; a bool is kept as given."""
    import torch

    import labeler.encoders as encoders

    assert encoders.resolve_quantize(True, "cuda") is True and encoders.resolve_quantize(False) is False
    for capability, fast in [("AVX512", True), ("AVX2", False), ("DEFAULT", False)]:
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda c=capability: c)
        assert encoders.fast_int8_cpu() is fast
        assert encoders.resolve_quantize("auto", "cpu") is fast
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(encoders, "pick_device", lambda requested=None: "cuda")
    assert encoders.resolve_quantize("auto") is False
