"""Decision objectives (micro, macro, precision=P), exclusive groups and Bundle.classify."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labeler.bundle import Bundle
from labeler.decision import (APPLY, BELOW, SUGGEST, DecisionRule, Objective, best_f1_cut, exclusive_filter,
                              precision_curve, threshold_for_precision, tune, wilson_lower)
from labeler.metrics import f1_scores

LABELS = ["good", "noisy"]


def _validation(seed=0, n=400):
    """`good`: positives score high, cleanly separable above 0.7 (precision reachable);
    `noisy`: scores barely related to the truth (precision 0.9 unreachable)."""
    rng = np.random.RandomState(seed)
    y = (rng.rand(n, 2) < 0.3).astype(int)
    good = np.where(y[:, 0] == 1, rng.uniform(0.55, 1.0, n), rng.uniform(0.0, 0.6, n))
    noisy = np.clip(0.5 + 0.1 * (y[:, 1] - 0.5) + rng.normal(0, 0.2, n), 0, 1)
    return np.stack([good, noisy], axis=1), y


def test_objective_parsing():
    assert Objective.parse("micro") == Objective("micro")
    assert Objective.parse("precision=0.9") == Objective("precision", 0.9)
    assert str(Objective.parse("precision=0.9")) == "precision=0.9"
    assert Objective.parse(" micro + macro ") == Objective("micro+macro")
    assert Objective.parse("micro+macro").value(0.8, 0.4) == pytest.approx(0.6)
    for bad in ("precision=1.5", "precision=x", "accuracy", "precision"):
        with pytest.raises(ValueError):
            Objective.parse(bad)


def test_wilson_lower_bound_is_below_the_proportion_and_grows_with_n():
    assert float(wilson_lower(10, 10)) < 1.0
    assert float(wilson_lower(100, 100)) > float(wilson_lower(10, 10))
    assert float(wilson_lower(0, 0)) == 0.0


def test_precision_objective_reaches_target_on_validation_and_marks_the_rest_suggest_only():
    scores, y = _validation()
    rule, _ = tune(scores, y, LABELS, objective="precision=0.9")
    assert rule.objective == "precision=0.9" and rule.kind == "per_label"
    assert rule.suggest_only == ["noisy"]
    chosen = rule.decide(scores, LABELS)
    tp, n = int((chosen[:, 0] & y[:, 0]).sum()), int(chosen[:, 0].sum())
    assert n > 0 and float(wilson_lower(tp, n)) >= 0.9
    # the lowest threshold that does: one step lower misses the target
    lower = [p for p in precision_curve(scores[:, 0], y[:, 0]) if p[0] < rule.thresholds["good"]]
    assert all(p[1] < 0.9 for p in lower)
    assert rule.stats["good"]["precision_lower"] >= 0.9 and rule.stats["good"]["support"] == int(y[:, 0].sum())
    codes = rule.classify(scores, LABELS)
    assert set(codes[:, 1].tolist()) <= {BELOW, SUGGEST}  # suggest-only is never applied
    assert (codes[:, 0] == APPLY).sum() == n


def test_classify_with_a_callers_precision_target():
    scores, y = _validation()
    rule, _ = tune(scores, y, LABELS, objective="micro")
    assert rule.suggest_only == []
    loose = rule.classify(scores, LABELS)  # micro objective, no target: every chosen label applied
    assert set(np.unique(loose[rule.decide(scores, LABELS) == 1])) == {APPLY}
    strict = rule.classify(scores, LABELS, precision=0.9)
    assert (strict[:, 1] != APPLY).all()  # noisy cannot reach 0.9
    assert ((strict == APPLY) <= (loose == APPLY)).all()
    cut = threshold_for_precision(rule.curves["good"], 0.9)
    assert cut is not None and (scores[strict[:, 0] == APPLY, 0] >= cut).all()


def test_micro_and_macro_objectives():
    scores, y = _validation()
    micro, _ = tune(scores, y, LABELS, objective="micro")
    macro, _ = tune(scores, y, LABELS, objective="macro")
    assert micro.objective == "micro" and macro.objective == "macro"
    assert DecisionRule.from_dict(macro.to_dict()) == macro


def test_best_cut_sits_in_the_middle_of_the_gap_and_ignores_constant_scores():
    t, f1 = best_f1_cut(np.array([0.9, 0.8, 0.2, 0.1]), np.array([1, 1, 0, 0]))
    assert f1 == 1.0 and 0.3 < t < 0.7
    t, f1 = best_f1_cut(np.zeros(10), np.array([1] + [0] * 9))
    assert f1 == 0.0 and t > 0  # a label never seen in training: choose nothing


GROUP = [["bug", "enhancement", "question"]]
THREE = ["bug", "enhancement", "question", "docs"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.floats(0, 1), min_size=4, max_size=4), min_size=1, max_size=20),
       st.sampled_from(["top_k", "threshold", "per_label"]), st.integers(1, 4))
def test_exclusive_groups_never_yield_two_labels_of_a_group(rows, kind, k):
    scores = np.array(rows)
    rule = DecisionRule(kind, k=k, threshold=0.3, thresholds={"bug": 0.1}, exclusive=GROUP)
    chosen = rule.decide(scores, THREE)
    assert (chosen[:, :3].sum(axis=1) <= 1).all()
    # the one kept is the best-scoring of those the rule chose without the group
    free = DecisionRule(kind, k=k, threshold=0.3, thresholds={"bug": 0.1}).decide(scores, THREE)
    assert (chosen[:, 3] == free[:, 3]).all()
    for row, free_row, got in zip(scores, free, chosen):
        if free_row[:3].any():
            assert got[:3].sum() == 1 and row[:3][got[:3] == 1][0] == row[:3][free_row[:3] == 1].max()


def test_tuning_honours_exclusive_groups_and_rejects_bad_groups():
    rng = np.random.RandomState(1)
    scores = rng.rand(50, 4)
    y = np.zeros((50, 4), dtype=int)
    y[np.arange(50), scores[:, :3].argmax(axis=1)] = 1
    rule, _ = tune(scores, y, THREE, exclusive=GROUP)
    assert rule.exclusive == GROUP
    assert (rule.decide(scores, THREE)[:, :3].sum(axis=1) <= 1).all()
    with pytest.raises(ValueError, match="not in the label set"):
        tune(scores, y, THREE, exclusive=[["bug", "feature"]])
    with pytest.raises(ValueError, match="two exclusive groups"):
        tune(scores, y, THREE, exclusive=[["bug", "docs"], ["docs", "question"]])
    assert exclusive_filter(np.ones((2, 4), dtype=np.int8), scores[:2], THREE, []).sum() == 8


def test_bundle_classify_and_manifest_stats(toy, tmp_path):
    texts, label_sets, labels, _ = toy
    bundle = Bundle.train("naive_bayes", texts, label_sets, labels=labels, valid=(texts, label_sets),
                          objective="precision=0.6")  # 4 bugs of 4: Wilson bound .71
    calls = bundle.classify([texts[0]])[0]  # a bug
    assert [c.label for c in calls] == sorted(labels, key=lambda l: -dict((c.label, c.score) for c in calls)[l])
    assert {c.decision for c in calls} <= {"apply", "suggest", "below"}
    assert calls[0].label == "bug" and calls[0].decision == "apply"
    path = bundle.save(tmp_path / "b")
    loaded = Bundle.load(path)
    assert loaded.decision.objective == "precision=0.6"
    assert set(loaded.manifest["decision"]["stats"]["bug"]) >= {"threshold", "precision", "recall", "support"}
    assert loaded.classify(texts) == bundle.classify(texts)
    # a caller's stricter target turns applied labels into suggestions, never the reverse
    strict = loaded.classify(texts, precision=0.999)
    default = loaded.classify(texts)
    for a, b in zip(strict, default):
        for x, z in zip(a, b):
            assert not (x.decision == "apply" and z.decision != "apply")


def test_micro_plus_macro_objective_keeps_the_rule_with_the_best_mean():
    scores, y = _validation(seed=3)
    rule, value = tune(scores, y, LABELS, objective="micro+macro")
    means = {}
    for kind in ("top_k", "threshold", "per_label"):
        r, _ = tune(scores, y, LABELS, kind=kind, objective="micro+macro")
        micro, macro = f1_scores(y, r.decide(scores, LABELS))
        means[kind] = (micro + macro) / 2
    assert value == pytest.approx(max(means.values()), abs=0.005)  # within tune's tie
    micro, macro = f1_scores(y, rule.decide(scores, LABELS))
    assert value == pytest.approx((micro + macro) / 2)
