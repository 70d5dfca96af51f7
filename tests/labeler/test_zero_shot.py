"""zero_shot: the embedding variant (default, offline), the NLI pipeline on a tiny model,
calibration with labelled issues, bundles, bad inputs, and the bot's path on MiniLM."""

from __future__ import annotations

import numpy as np
import pytest

from labeler.bundle import Bundle
from labeler.encoders import CACHE_ENV
from labeler.errors import ModelNotAvailableError
from labeler.strategies.zero_shot import ZeroShot


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path_factory.getbasetemp() / "emb-cache"))


def test_hypotheses_use_descriptions_and_templates(toy):
    _, _, labels, descriptions = toy
    z = ZeroShot(labels, {"bug": "Something isn't working"})
    assert z.variant == "embedding"
    assert z.hypotheses() == ["This issue is about bug: Something isn't working",
                              "This issue is about enhancement.", "This issue is about documentation."]
    plain = ZeroShot(labels, descriptions, use_descriptions=False, template="Label: {}")
    assert plain.hypotheses() == ["Label: bug", "Label: enhancement", "Label: documentation"]
    assert ZeroShot(labels, nli_model="some/model").variant == "nli"
    with pytest.raises(ValueError, match="variant"):
        ZeroShot(labels, variant="magic")
    with pytest.raises(ValueError, match="zero_shot: unknown parameter .temperature."):
        ZeroShot(labels, temperature=2)


def test_embedding_variant_without_data(toy, tiny_bert, tmp_path):
    texts, _, labels, descriptions = toy
    bundle = Bundle.train("zero_shot", [], [], labels=labels, descriptions=descriptions,
                          params={"model": str(tiny_bert)})
    assert bundle.decision.kind == "top_k" and bundle.decision.k == 1
    scores = bundle.predict_proba(texts)
    assert scores.shape == (12, 3) and scores.min() >= 0 and scores.max() <= 1
    assert all(len(p) == 1 for p in bundle.predict(texts))
    assert bundle.strategy.fitted_info["calibration"] == "none"
    assert bundle.strategy.offsets is None and bundle.strategy.fitted_info["centered_on"] == 0
    bundle.save(tmp_path / "z")
    again = Bundle.load(tmp_path / "z")
    np.testing.assert_array_equal(again.predict_proba(texts), scores)
    out = again.explain(texts[0])
    assert set(out.scores) == set(labels) and out.details["variant"] == "embedding" and out.neighbours == []


def test_embedding_variant_calibrated_with_labels(toy, tiny_bert, tmp_path):
    texts, label_sets, labels, descriptions = toy
    bundle = Bundle.train("zero_shot", texts[:8], label_sets[:8], labels=labels, descriptions=descriptions,
                          valid=(texts[8:], label_sets[8:]), params={"model": str(tiny_bert)})
    strategy = bundle.strategy
    assert strategy.fitted_info["calibration"] == "platt" and strategy.calib.shape == (3, 2)
    assert (strategy.calib[:, 0] > 0).all()  # calibration never inverts a label's ranking
    raw, cal = strategy.raw_scores(texts), strategy.predict_proba(texts)
    for j in range(3):
        assert (np.argsort(raw[:, j], kind="stable") == np.argsort(cal[:, j], kind="stable")).all()
    bundle.save(tmp_path / "z")
    np.testing.assert_array_equal(Bundle.load(tmp_path / "z").predict_proba(texts), cal)
    uncalibrated = ZeroShot(labels, descriptions, model=str(tiny_bert), calibration="none")
    np.testing.assert_allclose(uncalibrated.fit(texts, label_sets).predict_proba(texts), raw)


def test_centering_on_unlabelled_issues(toy, tiny_bert, tmp_path):
    texts, _, labels, descriptions = toy
    bundle = Bundle.train("zero_shot", [], [], labels=labels, descriptions=descriptions,
                          unlabelled=texts, params={"model": str(tiny_bert), "background_max": 10})
    strategy = bundle.strategy
    assert strategy.fitted_info["centered_on"] == 10 and strategy.offsets.shape == (3,)
    plain = ZeroShot(labels, descriptions, model=str(tiny_bert), center="none").fit([], [], unlabelled=texts)
    assert plain.offsets is None
    # centering shifts each label's cosine by a constant: the ranking of issues per label holds
    diff = 2 * (strategy.raw_scores(texts) - plain.raw_scores(texts))
    np.testing.assert_allclose(diff, np.tile(-strategy.offsets, (12, 1)), atol=1e-5)
    bundle.save(tmp_path / "c")
    np.testing.assert_array_equal(Bundle.load(tmp_path / "c").predict_proba(texts), bundle.predict_proba(texts))


def test_nli_variant_batches_all_labels(toy, tiny_nli, tmp_path):
    texts, label_sets, labels, descriptions = toy
    z = ZeroShot(labels, descriptions, nli_model=str(tiny_nli), batch_size=6)
    z.fit([], [])
    forwards = []
    model = z.pipeline.model
    hook = model.register_forward_hook(lambda mod, args, kwargs_out: forwards.append(1))
    try:
        scores = z.predict_proba(texts[:2])
    finally:
        hook.remove()
    assert scores.shape == (2, 3) and scores.min() >= 0 and scores.max() <= 1
    assert len(forwards) == 1  # 2 issues x 3 hypotheses = one batch of 6 pairs
    bundle = Bundle.train("zero_shot", [], [], labels=labels, descriptions=descriptions,
                          params={"nli_model": str(tiny_nli)})
    assert bundle.strategy.fitted_info["nli_model"] == str(tiny_nli)
    bundle.save(tmp_path / "n")
    np.testing.assert_allclose(Bundle.load(tmp_path / "n").predict_proba(texts), bundle.predict_proba(texts),
                               atol=1e-6)
    out = bundle.explain(texts[0])
    assert out.details["variant"] == "nli" and out.details["hypotheses"]["bug"].startswith("This issue is about bug")


def test_nli_bad_inputs_and_one_label(tiny_nli):
    z = ZeroShot(["bug"], nli_model=str(tiny_nli), max_length=64).fit([], [])
    scores = z.predict_proba(["", "crash " * 40_000, "ünïcödé 🐛"])
    assert scores.shape == (3, 1) and np.isfinite(scores).all()
    assert z.predict_proba([]).shape == (0, 1)


def test_embedding_bad_inputs_and_one_label(tiny_bert):
    z = ZeroShot(["bug"], {"bug": ""}, model=str(tiny_bert), max_length=32)
    z.fit(["", "x" * 200_000], [["bug"], []])  # one of each class: calibration is pooled
    scores = z.predict_proba(["", "crash " * 40_000, "x" * 200_000])
    assert scores.shape == (3, 1) and np.isfinite(scores).all()
    with pytest.raises(RuntimeError, match="not fitted"):
        ZeroShot(["bug"], model=str(tiny_bert)).predict_proba(["x"])


def test_missing_models_are_clear_errors(tmp_path, tiny_bert):
    with pytest.raises(ModelNotAvailableError, match="bart-large-mnli"):
        ZeroShot(["bug"], variant="nli").fit([], [])  # the hub default, offline
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        ZeroShot(["bug"], nli_model=str(tmp_path / "absent")).fit([], [])
    with pytest.raises(ModelNotAvailableError, match="entailment"):
        ZeroShot(["bug"], nli_model=str(tiny_bert)).fit([], [])  # no NLI labels in its config
    with pytest.raises(ModelNotAvailableError):
        ZeroShot(["bug"], model=str(tmp_path / "absent")).fit([], [])


def test_bot_path_with_embedded_minilm(toy, tmp_path):
    """What the bot does: repository labels and descriptions only, then predict, offline."""
    texts, label_sets, labels, descriptions = toy
    bundle = Bundle.train("zero_shot", [], [], labels=labels, descriptions=descriptions)
    bundle.save(tmp_path / "bot")
    predictions = Bundle.load(tmp_path / "bot").predict(texts)
    hits = sum(p[0].label in truth for p, truth in zip(predictions, label_sets))
    assert hits >= 9, predictions  # MiniLM gets 12 of 12 top-1 on these issues


def test_holds_its_encoder_and_pipeline(toy, tiny_bert, tiny_nli):
    from labeler.strategies import zero_shot

    _, _, labels, _ = toy
    z = ZeroShot(labels, model=str(tiny_bert), device="cpu")
    assert z.encoder is z.encoder
    nli = ZeroShot(labels, nli_model=str(tiny_nli), device="cpu")
    assert nli.pipeline is nli.pipeline
    assert isinstance(zero_shot._PIPELINES, zero_shot.LRU) and zero_shot._PIPELINES.maxsize <= 2
