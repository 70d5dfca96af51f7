import numpy as np
import pytest

from labeler.decision import DecisionRule, tune
from labeler.metrics import evaluate

LABELS = ["a", "b", "c"]
SCORES = np.array([[0.9, 0.2, 0.1], [0.3, 0.8, 0.7], [0.1, 0.4, 0.2], [0.6, 0.55, 0.05]])
TRUTH = np.array([[1, 0, 0], [0, 1, 1], [0, 1, 0], [1, 1, 0]])


def test_rules():
    assert DecisionRule("top_k", k=1).decide(SCORES, LABELS).tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 0], [1, 0, 0]]
    assert DecisionRule("threshold", threshold=0.5).decide(SCORES, LABELS).tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 0], [1, 1, 0]]
    rule = DecisionRule("per_label", threshold=0.5, thresholds={"b": 0.35})
    assert rule.decide(SCORES, LABELS)[:, 1].tolist() == [0, 1, 1, 1]
    assert DecisionRule.from_dict(rule.to_dict()) == rule


def test_tune_finds_perfect_rule_and_auto_picks_best():
    rule, f1 = tune(SCORES, TRUTH, LABELS, kind="per_label")
    assert f1 == 1.0 and (rule.decide(SCORES, LABELS) == TRUTH).all()
    auto, auto_f1 = tune(SCORES, TRUTH, LABELS)
    assert auto_f1 == 1.0
    top, top_f1 = tune(SCORES, TRUTH, LABELS, kind="top_k")
    assert top.kind == "top_k" and top_f1 < 1.0


def test_bad_rules():
    with pytest.raises(ValueError, match="unknown decision rule"):
        DecisionRule("sometimes")
    with pytest.raises(ValueError, match="zero validation"):
        tune(np.zeros((0, 3)), np.zeros((0, 3)), LABELS)


def test_metrics_micro_macro_per_label():
    pred = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0], [1, 0, 0]])
    m = evaluate(TRUTH, pred, LABELS)
    assert m["n"] == 4
    assert m["micro_f1"] == pytest.approx(2 * 3 / (3 + 6))
    assert m["per_label"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1, "predicted": 0}
    assert m["macro_f1"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)
