"""The setfit strategy on a tiny BERT built in the test session (seconds, no hub)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("setfit")

from labeler.bundle import Bundle  # noqa: E402
from labeler.strategies import get_strategy  # noqa: E402

LONG = "Crash when loading " + "x" * 200_000


def make(tiny_bert, labels, **params):
    base = {"model": str(tiny_bert), "num_iterations": 1, "batch_size": 4, "device": "cpu"}
    return get_strategy("setfit")(labels, **{**base, **params})


def test_fit_predict_save_reload(toy, tiny_bert, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # setfit's default output_dir would be ./checkpoints
    texts, label_sets, labels, _ = toy
    labels = labels + ["never-used"]
    strategy = make(tiny_bert, labels, max_steps=3).fit(texts, label_sets)
    info = strategy.fitted_info
    assert info["steps"] > 0 and info["labels_with_head"] == 3 and info["constant_labels"] == ["never-used"]

    queries = texts[:3] + ["", LONG]
    scores = strategy.predict_proba(queries)
    assert scores.shape == (5, 4) and np.all((scores >= 0) & (scores <= 1))
    assert np.all(scores[:, 3] == 0)  # never seen positive: constant base rate
    assert strategy.predict_proba([]).shape == (0, 4)

    strategy.save(tmp_path / "sf")
    files = [p.name for p in (tmp_path / "sf").rglob("*")]
    assert "head.npz" in files and "model.safetensors" in files
    assert not any(name.endswith((".pkl", ".joblib", ".bin", ".pt")) for name in files)
    reloaded = get_strategy("setfit").load(tmp_path / "sf")
    np.testing.assert_allclose(reloaded.predict_proba(queries), scores, atol=1e-6)
    assert not (tmp_path / "checkpoints").exists()


def test_head_separates_toy_labels(toy, tiny_bert):
    texts, label_sets, labels, _ = toy
    strategy = make(tiny_bert, labels, max_steps=1, head_c=100.0).fit(texts, label_sets)
    scores = strategy.predict_proba(texts)
    y = strategy.binarize(label_sets)
    assert scores[y == 1].mean() > scores[y == 0].mean()


def test_one_label_all_positive_and_none_positive(toy, tiny_bert):
    texts, label_sets, _, _ = toy
    # "bug" has both classes; a label set of one label works
    one = make(tiny_bert, ["bug"], max_steps=2).fit(texts, label_sets)
    assert one.predict_proba(["", LONG]).shape == (2, 1)
    # every issue positive: nothing to contrast per label, constant score 1
    allpos = make(tiny_bert, ["issue"], max_steps=2).fit(texts, [["issue"]] * len(texts))
    np.testing.assert_array_equal(allpos.predict_proba(["anything"]), [[1.0]])
    assert not allpos.fitted_info["contrastive_phase"]
    # no positive at all: no pairs, no head, constant 0
    nopos = make(tiny_bert, ["vision"]).fit(texts, [[] for _ in texts])
    assert nopos.fitted_info["steps"] == 0
    np.testing.assert_array_equal(nopos.predict_proba(["anything"]), [[0.0]])


def test_budget_stops_training(toy, tiny_bert):
    texts, label_sets, labels, _ = toy
    by_steps = make(tiny_bert, labels, num_iterations=5, max_steps=1).fit(texts, label_sets)
    assert by_steps.fitted_info["steps"] == 1
    by_time = make(tiny_bert, labels, num_iterations=5, max_seconds=0).fit(texts, label_sets)
    assert by_time.fitted_info["stopped_by_budget"] and by_time.fitted_info["steps"] == 1


def test_budget_keeps_the_tuned_body_and_fits_the_head(toy, tiny_bert, monkeypatch, tmp_path):
    """Stopped by the wall clock after 3 of 30 contrastive steps: the body tuned so far is
    kept, the head is fitted on it, and nothing is left behind."""
    import itertools

    from sentence_transformers import SentenceTransformer
    from sklearn.linear_model import LogisticRegression

    import labeler.strategies.setfit_strategy as sf
    from labeler.hf import make_budget_callback

    monkeypatch.chdir(tmp_path)
    ticks = itertools.count()  # a fake clock: one "second" per reading, i.e. per step
    monkeypatch.setattr(sf, "make_budget_callback",
                        lambda max_seconds, **kw: make_budget_callback(max_seconds, clock=lambda: float(next(ticks)), **kw))
    texts, label_sets, labels, _ = toy
    # 2 * 5 * 12 = 120 pairs at batch 4: 30 steps planned
    strategy = make(tiny_bert, labels, num_iterations=5, max_seconds=3, body_learning_rate=1e-3).fit(texts, label_sets)
    info = strategy.fitted_info
    assert info["stopped_by_budget"] and info["steps"] == 3 and info["labels_with_head"] == 3

    untuned = SentenceTransformer(str(tiny_bert), device="cpu").encode(texts[:3], convert_to_numpy=True)
    assert not np.allclose(strategy._embed(texts[:3]), untuned, atol=1e-4)  # the body was tuned
    emb = strategy._embed(texts)  # the head is the one the kept body's embeddings give
    y = strategy.binarize(label_sets)
    for row, j in enumerate(np.flatnonzero(strategy.trained)):
        head = LogisticRegression(C=1.0, max_iter=1000).fit(emb, y[:, j])
        np.testing.assert_allclose(strategy.coef[row], head.coef_[0], rtol=1e-4, atol=1e-6)
    assert strategy.predict_proba(texts[:2]).shape == (2, 3)
    assert list(tmp_path.iterdir()) == []  # no checkpoints in the working directory


def test_cuda_request_falls_back_to_cpu(toy, tiny_bert, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the fallback is not exercised")
    texts, label_sets, labels, _ = toy
    with pytest.warns(UserWarning, match="no CUDA"):
        strategy = make(tiny_bert, labels, device="cuda", max_steps=1).fit(texts, label_sets)
    assert strategy.fitted_info["device"] == "cpu"
    strategy.save(tmp_path / "sf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert get_strategy("setfit").load(tmp_path / "sf").device == "cpu"


@pytest.mark.parametrize("precision", ["fp32", "bf16", "auto"])
def test_precision_is_the_contrastive_phase_arithmetic(toy, tiny_bert, tmp_path, monkeypatch, precision):
    """bf16: setfit's training runs the transformer under bf16 autocast, while pooling, the
    normalisation and the loss get float32 token embeddings; the weights stay float32, the
    module's forward is restored and the head's embeddings are float32. fp32: no autocast
    anywhere. auto: bf16 only where the CPU computes it natively (here: said not to)."""
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    import labeler.hf

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(labeler.hf, "native_bf16", lambda device: False)
    in_bert, in_body = [], []
    bert_forward, body_forward = transformers.BertModel.forward, SentenceTransformer.forward

    def spy_bert(self, *args, **kwargs):
        in_bert.append(torch.is_autocast_enabled("cpu"))
        return bert_forward(self, *args, **kwargs)

    def spy_body(self, *args, **kwargs):
        out = body_forward(self, *args, **kwargs)
        in_body.append((torch.is_autocast_enabled("cpu"), out["sentence_embedding"].dtype))
        return out

    monkeypatch.setattr(transformers.BertModel, "forward", spy_bert)
    monkeypatch.setattr(SentenceTransformer, "forward", spy_body)
    texts, label_sets, labels, _ = toy
    strategy = make(tiny_bert, labels, max_steps=2, precision=precision).fit(texts, label_sets)
    used = "fp32" if precision == "auto" else precision
    assert strategy.fitted_info["precision"] == used and strategy.fitted_info["steps"] == 2
    assert (True in in_bert) == (used == "bf16")  # the transformer's training forwards
    assert in_bert[-1] is False  # the head's embeddings
    assert in_body and all(state == (False, torch.float32) for state in in_body)  # pooling and loss: float32
    assert "forward" not in vars(strategy.body[0])  # the class's forward again
    assert all(p.dtype == torch.float32 for p in strategy.body.parameters())
    assert strategy.predict_proba(texts[:2]).dtype == np.float64


def test_bundle_round_trip(toy, tiny_bert, tmp_path):
    texts, label_sets, labels, _ = toy
    bundle = Bundle.train("setfit", texts, label_sets, labels=labels, valid=(texts, label_sets),
                          params={"model": str(tiny_bert), "num_iterations": 1, "batch_size": 4, "max_steps": 3})
    bundle.save(tmp_path / "bundle")
    again = Bundle.load(tmp_path / "bundle")
    np.testing.assert_allclose(again.predict_proba(texts), bundle.predict_proba(texts), atol=1e-6)
    assert again.decide(texts).shape == (len(texts), 3)


def test_load_never_reads_a_pickled_head(toy, tiny_bert, tmp_path, monkeypatch):
    """A model_head.pkl planted in the bundle is ignored: loading uses no joblib/pickle."""
    import joblib
    import pickle

    texts, label_sets, labels, _ = toy
    make(tiny_bert, labels, max_steps=1).fit(texts, label_sets).save(tmp_path / "sf")
    (tmp_path / "sf" / "body" / "model_head.pkl").write_bytes(b"not a pickle")

    def boom(*args, **kwargs):
        raise AssertionError("a pickle was loaded")

    monkeypatch.setattr(joblib, "load", boom)
    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "loads", boom)
    get_strategy("setfit").load(tmp_path / "sf").predict_proba(["x"])


def test_bad_parameters(tiny_bert):
    with pytest.raises(ValueError, match="setfit: unknown parameter .iterations."):
        get_strategy("setfit")(["bug"], iterations=3)
    with pytest.raises(ValueError, match="at least one"):
        make(tiny_bert, ["bug"]).fit([], [])


def test_pair_check_matches_setfit_sampler():
    from labeler.strategies.setfit_strategy import _has_both_kinds_of_pairs

    assert _has_both_kinds_of_pairs(np.array([[1, 0], [0, 1]]))  # self-pairs positive, cross negative
    assert _has_both_kinds_of_pairs(np.array([[1], [0]]))  # unlabelled issue: negative self-pair
    assert not _has_both_kinds_of_pairs(np.array([[1, 0], [1, 1]]))  # every pair shares "a"
    assert not _has_both_kinds_of_pairs(np.zeros((3, 2)))  # no positive pair at all


def test_same_seed_same_model(toy, tiny_bert):
    texts, label_sets, labels, _ = toy
    a = make(tiny_bert, labels, max_steps=2, seed=3).fit(texts, label_sets).predict_proba(texts[:4])
    b = make(tiny_bert, labels, max_steps=2, seed=3).fit(texts, label_sets).predict_proba(texts[:4])
    np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.slow
def test_embedded_minilm_one_step(toy, tmp_path):
    """The shipped encoder (all-MiniLM-L6-v2, no hub) through fit, save and load."""
    texts, label_sets, labels, _ = toy
    strategy = get_strategy("setfit")(labels, max_steps=1, batch_size=4, device="cpu")
    strategy.fit(texts[:4], label_sets[:4])
    assert strategy.coef.shape[1] == 384
    strategy.save(tmp_path / "sf")
    reloaded = get_strategy("setfit").load(tmp_path / "sf")
    np.testing.assert_allclose(reloaded.predict_proba(texts[:2]), strategy.predict_proba(texts[:2]), atol=1e-5)


def test_linear_head_fits_saves_and_reloads(toy, tiny_bert, tmp_path, monkeypatch):
    """head="linear": the linear strategy on TF-IDF and the tuned body's embeddings, saved in
    linear/ beside body/ without pickles, reloaded from the bundle's own copy of the body."""
    import gc

    from labeler.strategies.linear import Linear

    monkeypatch.chdir(tmp_path)
    texts, label_sets, labels, _ = toy
    strategy = make(tiny_bert, labels, max_steps=2, head="linear", head_params={"C": 10.0, "threshold_folds": 3})
    strategy.fit(texts, label_sets, valid=(texts[:6], label_sets[:6]))
    head = strategy.head_model
    assert isinstance(head, Linear) and head.params["features"] == "both" and head.params["C"] == 10.0
    assert head.params["max_length"] == strategy.params["max_length"]
    assert strategy.fitted_info["head"]["linear"]["C"] == 10.0
    body_dir = strategy._body_dir
    assert body_dir.is_dir() and head.params["model"] == str(body_dir)
    assert strategy.body is None  # not kept in memory beside the head's encoder
    # the head reads the tuned body: its embedding block is the tuned body's embeddings, not the untuned ones
    from sentence_transformers import SentenceTransformer

    tuned = SentenceTransformer(str(body_dir), device="cpu").encode(texts[:2], normalize_embeddings=True)
    untuned = SentenceTransformer(str(tiny_bert), device="cpu").encode(texts[:2], normalize_embeddings=True)
    np.testing.assert_allclose(head._embed(texts[:2]), tuned, atol=1e-5)
    assert not np.allclose(tuned, untuned, atol=1e-4)

    scores = strategy.predict_proba(texts + [""])
    np.testing.assert_allclose(scores, head.predict_proba(texts + [""]))
    assert scores.shape == (len(texts) + 1, 3)
    oof, y = strategy.out_of_fold()
    assert oof.shape == y.shape == (len(texts), 3)

    strategy.save(tmp_path / "sf")
    files = [p.relative_to(tmp_path / "sf").as_posix() for p in (tmp_path / "sf").rglob("*")]
    assert "linear/linear.npz" in files and "body/model.safetensors" in files and "head.npz" not in files
    assert not any(name.endswith((".pkl", ".joblib", ".bin", ".pt")) for name in files)
    del strategy, head
    gc.collect()
    assert not body_dir.exists()  # the temporary body went with the model
    reloaded = get_strategy("setfit").load(tmp_path / "sf")
    assert reloaded.head_model.params["model"] == str(tmp_path / "sf" / "body")
    np.testing.assert_allclose(reloaded.predict_proba(texts + [""]), scores, atol=1e-5)
    reloaded.save(tmp_path / "again")  # a loaded model saves again (its body is the bundle's copy)
    again = get_strategy("setfit").load(tmp_path / "again")
    np.testing.assert_allclose(again.predict_proba(texts[:2]), scores[:2], atol=1e-5)


def test_linear_head_parameters_are_checked_before_training(tiny_bert):
    from labeler.errors import ParameterError

    with pytest.raises(ParameterError, match="linear: unknown parameter 'C_grd'"):
        make(tiny_bert, ["bug"], head="linear", head_params={"C_grd": [1]})
    with pytest.raises(ParameterError, match="head_params cannot set max_length, model"):
        make(tiny_bert, ["bug"], head="linear", head_params={"model": "x", "max_length": 64})
    with pytest.raises(ParameterError, match="setfit: parameter 'head'"):
        make(tiny_bert, ["bug"], head="mlp")
