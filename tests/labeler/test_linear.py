"""The linear strategy: TF-IDF and/or embeddings with one-vs-rest logistic regression."""

import json
import time

import numpy as np
import pytest

from labeler.bundle import Bundle
from labeler.strategies import get_strategy


def test_tfidf_learns_and_round_trips_without_pickles(toy, tmp_path):
    texts, label_sets, labels, _ = toy
    bundle = Bundle.train("linear", texts, label_sets, labels=labels + ["question"], valid=(texts, label_sets),
                          params={"title_weight": 0.5, "description_examples": 0})
    scores = bundle.predict_proba(["segfault crash traceback error", "please add a new feature request"])
    assert scores.shape == (2, 4)
    assert scores[0, 0] > scores[0, 1] and scores[1, 1] > scores[1, 0]
    assert (scores[:, 3] == 0).all()  # never seen in training: its base rate
    assert bundle.strategy.fitted_info["C_chosen_by"] == "validation"
    path = bundle.save(tmp_path / "b")
    files = sorted(p.name for p in (path / "model").iterdir())
    assert files == ["linear.npz", "strategy.json", "vocabulary.json"]
    with np.load(path / "model" / "linear.npz", allow_pickle=False) as data:  # no object arrays
        assert set(data.files) >= {"coef", "intercept", "word_idf", "char_idf", "title_idf"}
    assert set(json.loads((path / "model" / "vocabulary.json").read_text())) == {"word", "char", "title"}
    loaded = Bundle.load(path)
    probe = texts + ["", "x" * 100_000, "unseen words only zzz"]
    np.testing.assert_allclose(loaded.predict_proba(probe), bundle.predict_proba(probe), rtol=1e-5, atol=1e-6)


def test_c_by_cross_validation_or_default(toy):
    texts, label_sets, labels, _ = toy
    linear = get_strategy("linear")
    assert linear(labels, cv_min=6).fit(texts, label_sets).fitted_info["C_chosen_by"] == "3-fold cross-validation"
    assert linear(labels).fit(texts, label_sets).fitted_info["C_chosen_by"].startswith("default")
    assert linear(labels, C=2.0).fit(texts, label_sets).fitted_info["C"] == 2.0


def test_char_ngrams_off_and_empty_texts(toy):
    texts, label_sets, labels, _ = toy
    model = get_strategy("linear")(labels, char_ngram_max=0).fit(texts, label_sets)
    assert list(model.vectorizers) == ["word"]
    empty = get_strategy("linear")(["bug"]).fit(["", ""], [["bug"], []])
    assert empty.predict_proba(["", "a"]).shape == (2, 1)
    with pytest.raises(ValueError, match="features"):
        get_strategy("linear")(labels, features="pixels")


def test_embedding_and_both_features(toy, tiny_bert, tmp_path):
    texts, label_sets, labels, _ = toy
    for features in ("embedding", "both"):
        bundle = Bundle.train("linear", texts, label_sets, labels=labels,
                              params={"features": features, "model": str(tiny_bert), "device": "cpu", "C": 1.0})
        path = bundle.save(tmp_path / features)
        np.testing.assert_allclose(Bundle.load(path).predict_proba(texts), bundle.predict_proba(texts), atol=1e-5)
    emb = Bundle.load(tmp_path / "embedding").strategy
    assert emb.vectorizers == {} and emb.coef.shape == (32, 3)  # (features: the tiny model's hidden size, labels)


def test_quantized_embeddings_are_saved_and_served_as_trained(toy, tiny_bert, tmp_path):
    """``quantize`` is a saved parameter: the loaded bundle encodes with the int8 encoder again."""
    texts, label_sets, labels, _ = toy
    bundle = Bundle.train("linear", texts, label_sets, labels=labels,
                          params={"features": "embedding", "model": str(tiny_bert), "quantize": True, "C": 1.0})
    loaded = Bundle.load(bundle.save(tmp_path / "int8"))
    assert loaded.strategy.params["quantize"] is True
    np.testing.assert_allclose(loaded.predict_proba(texts), bundle.predict_proba(texts), atol=1e-5)


def test_quantize_auto_is_resolved_when_built_and_saved_resolved(toy, tiny_bert, tmp_path, monkeypatch):
    """``quantize="auto"``: int8 where the encoder runs on a CPU with fast int8 (AVX-512),
    float on other CPUs and where torch sees CUDA; what it resolved to is what the bundle saves,
    so a model trained on one machine is served with the same embeddings on another."""
    import labeler.encoders

    monkeypatch.setattr(labeler.encoders, "fast_int8_cpu", lambda: True)
    texts, label_sets, labels, _ = toy
    common = {"features": "embedding", "model": str(tiny_bert), "quantize": "auto", "C": 1.0}
    bundle = Bundle.train("linear", texts, label_sets, labels=labels, params=common)
    assert bundle.strategy.params["quantize"] is True  # no CUDA here
    assert Bundle.load(bundle.save(tmp_path / "cpu")).strategy.params["quantize"] is True
    assert get_strategy("linear")(labels, quantize="auto").params["quantize"] is False  # tfidf: no encoder
    assert get_strategy("linear")(labels, **{**common, "device": "cpu"}).params["quantize"] is True
    monkeypatch.setattr(labeler.encoders, "fast_int8_cpu", lambda: False)  # an AVX2-only CPU
    assert get_strategy("linear")(labels, **common).params["quantize"] is False
    monkeypatch.setattr(labeler.encoders, "fast_int8_cpu", lambda: True)
    monkeypatch.setattr(labeler.encoders, "pick_device", lambda requested=None: "cuda")
    assert get_strategy("linear")(labels, **common).params["quantize"] is False


def test_tfidf_prediction_is_fast(toy):
    """Not a benchmark (experiments/ measures speed): a guard against a pathological path,
    e.g. a 200,000-character log not being cut before the character n-grams."""
    texts, label_sets, labels, _ = toy
    model = get_strategy("linear")(labels).fit(texts, label_sets)
    long = ["Crash\n\n" + "Traceback line with words 12345 " * 7000] * 20
    started = time.perf_counter()
    model.predict_proba(long)
    assert (time.perf_counter() - started) / len(long) < 0.25


_WORDS = ["a", "I", "crash", "Traceback", "load_dataset('x')", "ünïcödé", "🐛", "e.g.", "--", "ValueError:", "x" * 30]


@pytest.mark.parametrize("ngrams,sublinear", [((2, 5), True), ((1, 3), False), ((4, 6), True)])
def test_char_ngrams_equal_scikit_learns_transform(ngrams, sublinear):
    """The fast char_wb transform gives scikit-learn's matrix exactly, on words shorter and
    longer than the n-grams, odd whitespace, unicode, empty texts and words never seen."""
    from hypothesis import given, settings, strategies as st
    from sklearn.feature_extraction.text import TfidfVectorizer

    from labeler.strategies.linear import CharNgrams

    train = [" ".join(_WORDS[i:] + _WORDS[:i]) for i in range(len(_WORDS))] + ["Crash\tcrash\n\ncrash"]
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=ngrams, sublinear_tf=sublinear, max_features=300,
                          dtype=np.float32).fit(train)
    fast = CharNgrams(vec, max_words=5)  # a tiny memo: emptied many times on the way

    pieces = st.sampled_from(_WORDS + [" ", "\t", "\n\n"]) | st.text(alphabet=" \t\nabcXYZ_.:é🐛", max_size=6)

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.lists(pieces, max_size=12).map("".join), max_size=4))
    def check(texts):
        texts = texts + ["", "   "]
        np.testing.assert_array_equal(fast.transform(texts).toarray(), vec.transform(texts).toarray())

    check()


def test_char_ngrams_refuses_what_it_does_not_reproduce():
    from sklearn.feature_extraction.text import TfidfVectorizer

    from labeler.strategies.linear import CharNgrams

    with pytest.raises(ValueError, match="char_wb"):
        CharNgrams(TfidfVectorizer(analyzer="char").fit(["crash"]))


def test_model_saved_before_max_length_loads_with_256_tokens(toy, tmp_path):
    """A new default never changes an old model: a linear model whose saved parameters lack
    max_length (saved before it existed) embeds 256 tokens, as it was trained to."""
    texts, label_sets, labels, _ = toy
    model = get_strategy("linear")(labels, C=1.0).fit(texts, label_sets)
    assert model.params["max_length"] == 128
    model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "strategy.json").read_text())
    del meta["params"]["max_length"]
    (tmp_path / "m" / "strategy.json").write_text(json.dumps(meta))
    assert get_strategy("linear").load(tmp_path / "m").params["max_length"] == 256


def test_out_of_fold_scores_each_training_issue_without_it(toy):
    """Out-of-fold scores come from refits that left the issue out: its own label scores
    lower than in the model that saw it. They are computed once; 0 folds means none."""
    texts, label_sets, labels, _ = toy
    linear = get_strategy("linear")(labels, C=10.0).fit(texts, label_sets)
    in_sample = linear.predict_proba(texts)
    scores, y = linear.out_of_fold()
    assert scores.shape == in_sample.shape == y.shape
    np.testing.assert_array_equal(y, linear.binarize(label_sets))
    assert scores[y == 1].mean() < in_sample[y == 1].mean()
    assert linear.out_of_fold() is None  # the training matrix was freed
    assert get_strategy("linear")(labels, C=10.0, threshold_folds=0).fit(texts, label_sets).out_of_fold() is None


def test_bundle_tunes_on_validation_and_out_of_fold_scores(toy):
    texts, label_sets, labels, _ = toy
    valid = (texts[:4], label_sets[:4])
    bundle = Bundle.train("linear", texts, label_sets, labels=labels, valid=valid, params={"C": 10.0})
    assert bundle.manifest["decision_tuned_on"] == {"validation": 4, "out_of_fold_training": len(texts)}
    assert bundle.manifest["validation"]["n"] == 4  # what it reports is validation's alone
    # what the rule was tuned on stays in memory: out-of-fold rows, then validation's
    scores, y, n_valid = bundle.tuning
    assert scores.shape == y.shape == (len(texts) + 4, len(labels)) and n_valid == 4
    np.testing.assert_allclose(scores[-4:], bundle.strategy.validation_scores(valid[0]))
    np.testing.assert_array_equal(y[-4:], bundle.strategy.binarize(valid[1]))
    plain = Bundle.train("linear", texts, label_sets, labels=labels, valid=valid,
                         params={"C": 10.0, "threshold_folds": 0})
    assert "decision_tuned_on" not in plain.manifest
    assert plain.tuning[0].shape == (4, len(labels)) and plain.tuning[2] == 4
    assert Bundle.train("linear", texts, label_sets, labels=labels, params={"C": 10.0}).tuning is None


def test_rare_labels_learn_from_their_descriptions(toy):
    """description_examples=N: a label with fewer than N training issues gets its name and
    description as one more training issue; the cross-fitted scores stay the real issues'."""
    texts, label_sets, labels, _ = toy
    descriptions = {"question": "a usage question asking how to do something"}
    plain = get_strategy("linear")(labels + ["question"], descriptions, C=10.0, description_examples=0)
    plain.fit(texts, label_sets)
    linear = get_strategy("linear")(labels + ["question"], descriptions, C=10.0, description_examples=2)
    linear.fit(texts, label_sets)
    probe = ["how do I do something, a usage question", "segfault crash traceback error"]
    assert (plain.predict_proba(probe)[:, -1] == 0).all()  # never seen: no model
    scores = linear.predict_proba(probe)
    assert scores[0, -1] > scores[1, -1] and scores[0, -1] > 0
    assert linear.fitted_info["described"] == ["question"] and plain.fitted_info["described"] == []
    oof_scores, y = linear.out_of_fold()
    assert oof_scores.shape == y.shape == (len(texts), len(labels) + 1) and not y[:, -1].any()
    # labels with at least N training issues are left alone
    same = get_strategy("linear")(labels, descriptions, C=10.0, description_examples=1).fit(texts, label_sets)
    np.testing.assert_allclose(same.predict_proba(probe), get_strategy("linear")(labels, C=10.0, description_examples=0)
                               .fit(texts, label_sets).predict_proba(probe), atol=1e-4)
