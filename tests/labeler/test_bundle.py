"""labeler.bundle: training a strategy into a bundle, the default decision rule, metadata for
fit, typed explanations, atomic saving, and corrupt or incompatible bundles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from labeler.bundle import Bundle, Explanation, Neighbour, Prediction
from labeler.decision import default_rule
from labeler.decision import DecisionRule
from labeler.errors import BundleError
from labeler.strategies import REGISTRY, available, get_strategy
from labeler.strategies.base import Strategy

EXAMPLES = Path(__file__).resolve().parents[2] / "labeler" / "examples"


class Recorder(Strategy):
    """Scores every label 0.6 and remembers what fit was given."""

    name = "recorder"
    calls: list[dict] = []

    def fit(self, texts, label_sets, *, valid=None, unlabelled=None, metadata=None):
        type(self).calls.append({"n": len(texts), "metadata": metadata})
        return self

    def predict_proba(self, texts):
        return np.full((len(texts), len(self.labels)), 0.6)

    def _save(self, directory):
        (directory / "recorder.json").write_text("{}")

    def _load(self, directory):
        pass


class OldStyle(Recorder):
    """A strategy written before ``fit`` took metadata."""

    name = "old_style"

    def fit(self, texts, label_sets, *, valid=None, unlabelled=None):
        return self


class ZeroShotLike(Recorder):
    name = "zero_shot_like"
    needs_training = False


@pytest.fixture(autouse=True)
def _fresh_calls():
    Recorder.calls = []


def test_registry_knows_all_strategies():
    assert {"naive_bayes", "knn", "zero_shot", "finetune", "setfit"} <= set(available())
    assert get_strategy("naive_bayes").name == "naive_bayes"
    with pytest.raises(KeyError, match="unknown strategy"):
        get_strategy("magic")


def test_train_records_the_manifest(toy, tmp_path):
    texts, label_sets, labels, descriptions = toy
    bundle = Bundle.train("naive_bayes", texts, label_sets, labels=labels, descriptions=descriptions,
                          valid=(texts, label_sets), params={"alpha": 0.5})
    assert bundle.labels == labels and bundle.strategy.descriptions == descriptions
    manifest = json.loads((bundle.save(tmp_path / "b") / "manifest.json").read_text())
    assert manifest["params"] == {"alpha": 0.5, "ngram_max": 1, "min_df": 1, "lowercase": True}
    assert manifest["training"]["n"] == len(texts) and manifest["validation"]["n"] == len(texts)
    assert manifest["decision"]["kind"] in ("top_k", "threshold", "per_label")
    with pytest.raises(ValueError, match="labels are needed"):
        Bundle.train("naive_bayes", texts, label_sets)


def test_default_rule_follows_needs_training():
    assert default_rule(Recorder(["a"]).needs_training) == DecisionRule("threshold", threshold=0.5)
    assert default_rule(ZeroShotLike(["a"]).needs_training) == DecisionRule("top_k", k=1)
    assert default_rule(Recorder(["a"]).needs_training, "top_k") == DecisionRule("top_k", k=1)
    # and through Bundle.train with no validation data
    assert Bundle.train(ZeroShotLike(["a"]), ["x"], [["a"]]).decision == DecisionRule("top_k", k=1)
    assert get_strategy("zero_shot").needs_training is False
    for name in ("naive_bayes", "knn", "finetune", "setfit"):
        assert get_strategy(name).needs_training is True
    # with no validation data the bundle uses that rule
    assert Bundle.train(ZeroShotLike(["a", "b"]), [], []).decision.kind == "top_k"
    assert Bundle.train(Recorder(["a", "b"]), ["x"], [["a"]]).decision.kind == "threshold"


def test_metadata_goes_to_fit_only_when_given():
    meta = [{"number": 1, "id": 10, "title": "one"}, {"number": 2, "id": 20, "title": "two"}]
    Bundle.train(Recorder(["a"]), ["x", "y"], [["a"], []], metadata=meta)
    Bundle.train(Recorder(["a"]), ["x", "y"], [["a"], []])
    assert Recorder.calls == [{"n": 2, "metadata": meta}, {"n": 2, "metadata": None}]
    Bundle.train(OldStyle(["a"]), ["x"], [["a"]])  # no metadata given: an old fit signature still works
    with pytest.raises(ValueError, match="2 texts but 1 metadata"):
        Bundle.train(Recorder(["a"]), ["x", "y"], [["a"], []], metadata=meta[:1])


def test_cli_train_gives_every_strategy_the_issue_metadata(tmp_path, monkeypatch):
    """The generic path: no strategy-specific attribute is set by the CLI."""
    from labeler.cli import app

    monkeypatch.setitem(REGISTRY, "recorder", Recorder)
    result = CliRunner().invoke(app, ["train", str(EXAMPLES / "issues.jsonl"), "--label-map", str(EXAMPLES / "labels.yml"),
                                      "-s", "recorder", "-o", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    (call,) = Recorder.calls
    assert call["n"] == len(call["metadata"]) > 0
    first = call["metadata"][0]
    assert set(first) <= {"number", "id", "title"} and isinstance(first["number"], int) and first["title"]


def test_predict_and_explain(toy):
    texts, label_sets, labels, _ = toy
    bundle = Bundle.train("naive_bayes", texts, label_sets, labels=labels)
    preds = bundle.predict(["segfault crash traceback", ""])
    assert all(isinstance(p, Prediction) for row in preds for p in row)
    assert [p.score for p in preds[0]] == sorted((p.score for p in preds[0]), reverse=True)
    assert bundle.decide(texts).shape == (len(texts), len(labels))
    out = bundle.explain("segfault crash traceback")
    assert isinstance(out, Explanation) and out.neighbours == [] and out.details == {}
    np.testing.assert_allclose([out.scores[l] for l in labels], bundle.predict_proba(["segfault crash traceback"])[0])
    assert json.loads(json.dumps(out.to_dict())) == {"scores": out.scores, "neighbours": []}
    assert bundle.evaluate(texts, label_sets)["ms_per_issue"] >= 0


def test_explanation_to_dict():
    n = Neighbour.from_record({"number": 7, "id": 70, "title": "Crash", "labels": ["bug"], "url": "u"}, 0.91)
    assert (n.id, n.number, n.title, n.labels, n.similarity, n.extra) == (70, 7, "Crash", ["bug"], 0.91, {"url": "u"})
    assert n.to_dict() == {"id": 70, "number": 7, "title": "Crash", "labels": ["bug"], "similarity": 0.91, "url": "u"}
    assert "number" not in Neighbour(id="#3", title="t", labels=[], similarity=0.5).to_dict()
    e = Explanation(scores={"bug": 0.9}, neighbours=[n], details={"k": 3})
    assert e.to_dict() == {"scores": {"bug": 0.9}, "k": 3, "neighbours": [n.to_dict()]}


def test_save_replaces_only_when_complete(toy, tmp_path):
    texts, label_sets, labels, _ = toy
    good = Bundle.train("naive_bayes", texts, label_sets, labels=labels)
    path = good.save(tmp_path / "b")
    before = (path / "manifest.json").read_text()

    class Broken(Recorder):
        name = "broken"

        def _save(self, directory):
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        Bundle.train(Broken(["a"]), ["x"], [["a"]]).save(path)
    assert (path / "manifest.json").read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["b"]  # no half-written temp dir left
    np.testing.assert_allclose(Bundle.load(path).predict_proba(texts), good.predict_proba(texts))


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
    manifest.write_text(good.replace('"strategy": "naive_bayes"', '"strategy": "magic"'))
    with pytest.raises(BundleError, match="incompatible bundle"):
        Bundle.load(path)
    manifest.write_text(good)
    (path / "model" / "naive_bayes.npz").write_bytes(b"garbage")
    with pytest.raises(BundleError, match="corrupt"):
        Bundle.load(path)
