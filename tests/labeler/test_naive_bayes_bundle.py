import json

import numpy as np
import pytest

from labeler.bundle import Bundle
from labeler.errors import BundleError
from labeler.strategies import available, get_strategy


def test_registry_knows_all_strategies():
    assert {"naive_bayes", "knn", "zero_shot", "finetune", "setfit"} <= set(available())
    assert get_strategy("naive_bayes").name == "naive_bayes"
    with pytest.raises(KeyError, match="unknown strategy"):
        get_strategy("magic")


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


def test_corrupt_and_incompatible_bundles(toy, tmp_path):
    texts, label_sets, labels, _ = toy
    with pytest.raises(BundleError, match="no model bundle"):
        Bundle.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="manifest.json is missing"):
        Bundle.load(tmp_path / "empty")
    path = Bundle.train("naive_bayes", texts, label_sets, labels=labels).save(tmp_path / "b")
    manifest = path / "manifest.json"
    good = manifest.read_text()
    manifest.write_text("{broken")
    with pytest.raises(BundleError, match="not valid JSON"):
        Bundle.load(path)
    manifest.write_text(good.replace('"format_version": 1', '"format_version": 99'))
    with pytest.raises(BundleError, match="format version 99"):
        Bundle.load(path)
    manifest.write_text(good)
    (path / "model" / "naive_bayes.npz").write_bytes(b"garbage")
    with pytest.raises(BundleError, match="corrupt"):
        Bundle.load(path)
