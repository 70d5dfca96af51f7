"""knn: FAISS neighbours, k and m tuned on validation, explain, bundles, GPU fallback."""

from __future__ import annotations

import json

import numpy as np
import pytest

from labeler.bundle import Bundle
from labeler.decision import DecisionRule
from labeler.encoders import CACHE_ENV
from labeler.errors import ModelNotAvailableError
from labeler.strategies import Explanation, Neighbour, get_strategy
from labeler.strategies.knn import KNN, vote_scores


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path_factory.getbasetemp() / "emb-cache"))


def _split(toy):
    texts, label_sets, labels, descriptions = toy
    return texts[:8], label_sets[:8], (texts[8:], label_sets[8:]), labels


def test_vote_scores_cut_at_half_is_seen_m_times():
    rng = np.random.default_rng(0)
    for k in range(1, 33):
        for m in range(1, k + 1):
            counts = np.arange(k + 1)
            for tiebreak in (None, np.zeros(k + 1), np.ones(k + 1), rng.random(k + 1)):
                scores = vote_scores(counts, k, m, tiebreak)
                assert ((scores >= 0.5) == (counts >= m)).all()
                assert (np.diff(scores) > 0).all() and scores.min() >= 0 and scores.max() <= 1
            # the tie-break orders equal counts only
            tied = vote_scores(np.array([m, m]), k, m, np.array([0.2, 0.9]))
            assert tied[1] > tied[0]


def test_fit_predict_save_reload(toy, tiny_bert, tmp_path):
    texts, label_sets, valid, labels = _split(toy)
    bundle = Bundle.train("knn", texts, label_sets, labels=labels, valid=valid,
                          params={"model": str(tiny_bert), "device": "cpu"})
    info = bundle.strategy.fitted_info
    assert 1 <= info["m"] <= info["k"] <= len(texts) and info["tuned_on"] == "validation"
    assert info["index"] == "IndexFlatIP"
    scores = bundle.predict_proba(toy[0])
    assert scores.shape == (12, 3) and scores.min() >= 0 and scores.max() <= 1
    # the default 0.5 cut is "seen at least m times"
    strategy = bundle.strategy
    _, ids = strategy._neighbours(strategy.encoder.encode(toy[0]), info["k"])
    counts = strategy._counts(ids, info["k"])
    assert (DecisionRule("threshold", threshold=0.5).decide(scores, labels) == (counts >= info["m"])).all()

    bundle.save(tmp_path / "b")
    assert (tmp_path / "b" / "model" / "index.faiss").is_file()
    again = Bundle.load(tmp_path / "b")
    np.testing.assert_array_equal(again.predict_proba(toy[0]), scores)
    assert again.manifest["fitted"]["k"] == info["k"]


def test_quantized_encoder_saved_resolved_and_served_as_trained(toy, tiny_bert, tmp_path, monkeypatch):
    """``quantize="auto"`` is int8 on a CPU with fast int8; the bundle saves it resolved and the
    loaded index is queried with the int8 encoder again, wherever it is loaded."""
    import labeler.encoders

    monkeypatch.setattr(labeler.encoders, "fast_int8_cpu", lambda: True)
    texts, label_sets, valid, labels = _split(toy)
    bundle = Bundle.train("knn", texts, label_sets, labels=labels, valid=valid,
                          params={"model": str(tiny_bert), "quantize": "auto"})
    assert bundle.strategy.params["quantize"] is True and bundle.strategy.encoder.quantize
    monkeypatch.setattr(labeler.encoders, "fast_int8_cpu", lambda: False)  # served on an AVX2-only CPU
    again = Bundle.load(bundle.save(tmp_path / "int8"))
    assert again.strategy.params["quantize"] is True and again.strategy.encoder.quantize
    np.testing.assert_allclose(again.predict_proba(toy[0]), bundle.predict_proba(toy[0]), atol=1e-6)
    plain = get_strategy("knn")(labels, model=str(tiny_bert))
    assert plain.params["quantize"] is False and not plain.encoder.quantize


def test_explain_returns_neighbours_with_metadata(toy, tiny_bert):
    texts, label_sets, _, labels = toy
    meta = [{"number": 100 + i, "url": f"https://example/{100 + i}"} for i in range(len(texts))]
    knn = KNN(labels, model=str(tiny_bert), k=3, m=1).fit(texts, label_sets, metadata=meta)
    out = knn.explain(texts[0])
    assert isinstance(out, Explanation) and all(isinstance(n, Neighbour) for n in out.neighbours)
    assert out.details["k"] == 3 and len(out.neighbours) == 3
    first = out.neighbours[0]
    assert first.number == 100 and first.id == 100 and first.labels == ["bug"]
    assert first.title == "Crash when loading a parquet file" and first.extra == {"url": "https://example/100"}
    assert first.similarity == pytest.approx(1.0, abs=1e-4)
    sims = [n.similarity for n in out.neighbours]
    assert sims == sorted(sims, reverse=True)
    assert sum(out.details["votes"].values()) >= 3
    assert set(out.scores) == set(labels)
    data = json.loads(json.dumps(out.to_dict()))
    assert data["neighbours"][0] == {"number": 100, "id": 100, "title": "Crash when loading a parquet file",
                                     "labels": ["bug"], "url": "https://example/100",
                                     "similarity": pytest.approx(1.0, abs=1e-4)}
    assert data["k"] == 3 and data["m"] == 1 and set(data["votes"]) == set(labels)


def test_metadata_through_bundle(toy, tiny_bert, tmp_path):
    texts, label_sets, labels, _ = toy
    knn = get_strategy("knn")(labels, model=str(tiny_bert))
    meta = [{"id": f"#{i}", "title": f"issue {i}"} for i in range(len(texts))]
    bundle = Bundle.train(knn, texts, label_sets, metadata=meta)
    assert bundle.strategy.fitted_info["tuned_on"] == "defaults"
    bundle.save(tmp_path / "b")
    out = Bundle.load(tmp_path / "b").explain(texts[3])
    assert out.neighbours[0].to_dict() == {"id": "#3", "title": "issue 3", "labels": ["bug"],
                                           "similarity": pytest.approx(1.0, abs=1e-4)}
    with pytest.raises(ValueError, match="metadata"):
        KNN(labels, model=str(tiny_bert)).fit(texts, label_sets, metadata=[{}])


@pytest.mark.parametrize("params, kind", [({"index": "hnsw"}, "IndexHNSWFlat"),
                                          ({"approx_threshold": 4}, "IndexHNSWFlat"),
                                          ({"index": "ivf", "nlist": 2}, "IndexIVFFlat")])
def test_approximate_indexes(toy, tiny_bert, tmp_path, params, kind):
    texts, label_sets, valid, labels = _split(toy)
    bundle = Bundle.train("knn", texts, label_sets, labels=labels, valid=valid,
                          params={"model": str(tiny_bert), **params})
    assert bundle.strategy.fitted_info["index"] == kind
    scores = bundle.predict_proba(toy[0])
    bundle.save(tmp_path / "b")
    np.testing.assert_array_equal(Bundle.load(tmp_path / "b").predict_proba(toy[0]), scores)


def test_gpu_branch_falls_back_to_cpu(toy, tiny_bert, tmp_path, monkeypatch):
    import faiss

    texts, label_sets, labels, _ = toy
    # FAISS claims a GPU but (faiss-cpu) has no GPU API: the index stays on the CPU
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1)
    cpu = KNN(labels, model=str(tiny_bert), k=2, m=1).fit(texts, label_sets)
    assert not cpu.on_gpu and cpu.fitted_info["index"] == "IndexFlatIP"

    # with a (fake) GPU API the index goes through index_cpu_to_gpu ...
    calls = []

    class FakeResources:
        pass

    def cpu_to_gpu(resources, device, index):
        calls.append((type(resources).__name__, device, type(index).__name__))
        return index

    monkeypatch.setattr(faiss, "StandardGpuResources", FakeResources, raising=False)
    monkeypatch.setattr(faiss, "index_cpu_to_gpu", cpu_to_gpu, raising=False)
    gpu = KNN(labels, model=str(tiny_bert), k=2, m=1).fit(texts, label_sets)
    assert gpu.on_gpu and calls == [("FakeResources", 0, "IndexFlatIP")]
    np.testing.assert_array_equal(gpu.predict_proba(texts), cpu.predict_proba(texts))
    gpu.save(tmp_path / "g")

    # ... a failing move (e.g. HNSW has no GPU index) falls back to the CPU
    def broken(resources, device, index):
        raise RuntimeError("no GPU version of this index")

    monkeypatch.setattr(faiss, "index_cpu_to_gpu", broken, raising=False)
    fallback = KNN(labels, model=str(tiny_bert), k=2, m=1, index="hnsw").fit(texts, label_sets)
    assert not fallback.on_gpu
    # and use_gpu=False never tries
    monkeypatch.setattr(faiss, "index_cpu_to_gpu", cpu_to_gpu, raising=False)
    calls.clear()
    assert not KNN(labels, model=str(tiny_bert), use_gpu=False).fit(texts, label_sets).on_gpu
    assert calls == []


def test_bad_inputs(toy, tiny_bert):
    texts, label_sets, _, _ = toy
    knn = KNN(["bug"], model=str(tiny_bert), max_length=32)
    knn.fit(texts + ["", "x " * 100_000], [s for s in label_sets] + [["bug"], []],
            valid=(["", "crash " * 40_000], [["bug"], ["bug"]]))
    scores = knn.predict_proba(["", "crash " * 100_000, "plain words"])
    assert scores.shape == (3, 1) and np.isfinite(scores).all()
    assert knn.predict_proba([]).shape == (0, 1)
    with pytest.raises(ValueError, match="at least one"):
        KNN(["bug"], model=str(tiny_bert)).fit([], [])
    with pytest.raises(ValueError, match="knn: unknown parameter .kk."):
        KNN(["bug"], kk=3)
    with pytest.raises(RuntimeError, match="not fitted"):
        KNN(["bug"]).predict_proba(["x"])


def test_fixed_k_m_and_small_training_sets(toy, tiny_bert):
    texts, label_sets, valid, labels = _split(toy)
    knn = KNN(labels, model=str(tiny_bert), k=30, m=40).fit(texts[:3], label_sets[:3], valid=valid)
    assert (knn.fitted_info["k"], knn.fitted_info["m"]) == (3, 3)
    tuned_m = KNN(labels, model=str(tiny_bert), k=4).fit(texts, label_sets, valid=valid)
    assert tuned_m.fitted_info["k"] == 4 and 1 <= tuned_m.fitted_info["m"] <= 4


def test_missing_model(toy, tmp_path):
    texts, label_sets, _, labels = toy
    with pytest.raises(ModelNotAvailableError):
        KNN(labels, model=str(tmp_path / "absent")).fit(texts, label_sets)


def test_cache_switched_off_for_timing(toy, tiny_bert):
    """knn holds its encoder; cache_disabled() makes it re-encode, with no environment change."""
    import os

    from labeler.encoders import cache_disabled

    texts, label_sets, labels, _ = toy
    knn = KNN(labels, model=str(tiny_bert), k=2, m=1).fit(texts, label_sets)
    encoder = knn.encoder
    cached = knn.predict_proba(texts)
    assert encoder.cache is not None
    before, env = dict(encoder.stats), dict(os.environ)
    with cache_disabled():
        fresh = knn.predict_proba(texts)
    assert knn.encoder is encoder and dict(os.environ) == env
    assert encoder.stats["encoded"] == before["encoded"] + len(texts) and encoder.stats["cached"] == before["cached"]
    np.testing.assert_allclose(fresh, cached, rtol=1e-5, atol=1e-6)  # re-encoded in other batches
    knn.predict_proba(texts)
    assert encoder.stats["cached"] == before["cached"] + len(texts)  # the cache is back after the block


def test_refit_with_other_data(toy, tiny_bert):
    texts, label_sets, valid, labels = _split(toy)
    knn = KNN(labels, model=str(tiny_bert))
    meta = [{"number": i} for i in range(8)]
    knn.fit(texts, label_sets, valid=valid, metadata=meta)
    assert meta == [{"number": i} for i in range(8)]  # the caller's list is not changed
    knn.fit(texts[:5], label_sets[:5])
    assert "valid_micro_f1" not in knn.fitted_info and len(knn.neighbour_info) == 5
    assert knn.explain(texts[0]).neighbours[0].id == 0
