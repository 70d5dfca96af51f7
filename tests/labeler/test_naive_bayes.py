"""naive_bayes: learns, scores odd inputs, round-trips through a bundle without pickles."""

import json

import numpy as np

from labeler.bundle import Bundle


def test_naive_bayes_learns_and_round_trips(toy, tmp_path):
    texts, label_sets, labels, descriptions = toy
    bundle = Bundle.train("naive_bayes", texts, label_sets, labels=labels + ["question"], descriptions=descriptions,
                          valid=(texts, label_sets))
    scores = bundle.predict_proba(["segfault crash traceback when loading", "please add a new feature"])
    assert scores.shape == (2, 4)
    assert scores[0, 0] > scores[0, 1] and scores[1, 1] > scores[1, 0]
    assert (scores[:, 3] == 0).all()  # never seen: its base rate
    bundle.save(tmp_path / "b")
    files = {p.name for p in (tmp_path / "b").rglob("*") if p.is_file()}
    assert not any(name.endswith((".pkl", ".pickle", ".joblib")) for name in files)
    loaded = Bundle.load(tmp_path / "b")
    np.testing.assert_allclose(loaded.predict_proba(texts), bundle.predict_proba(texts))
    assert loaded.predict(["crash"])[0] == bundle.predict(["crash"])[0]
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    for key in ("strategy", "labels", "decision", "training", "validation", "libraries", "created"):
        assert key in manifest
    assert manifest["training"]["n"] == len(texts) and len(manifest["training"]["sha256"]) == 64


def test_odd_inputs(toy):
    texts, label_sets, labels, _ = toy
    bundle = Bundle.train("naive_bayes", texts, label_sets, labels=labels)
    assert bundle.predict_proba(["", "x" * 200_000]).shape == (2, 3)
    one = Bundle.train("naive_bayes", texts, [["bug"]] * len(texts), labels=["bug"])
    assert one.predict_proba(["anything"]).tolist() == [[1.0]]
    empty_vocab = Bundle.train("naive_bayes", ["", "a"], [["bug"], []], labels=["bug"])
    assert empty_vocab.predict_proba(["a"]).shape == (1, 1)
