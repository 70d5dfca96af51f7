"""The auto strategy: candidates cheapest first within a budget, best single or ensemble."""

import itertools

import numpy as np
import pytest

from labeler.bundle import Bundle
from labeler.errors import ParameterError
from labeler.strategies import get_strategy
from labeler.strategies.auto import Stacker, _cross_fit

CHEAP = [["naive_bayes", {}], ["linear", {"C": 1.0}], ["linear", {"C": 10.0, "char_ngram_max": 0}]]


def test_auto_records_every_candidate_and_round_trips(toy, tmp_path):
    texts, label_sets, labels, _ = toy
    bundle = Bundle.train("auto", texts, label_sets, labels=labels, valid=(texts, label_sets),
                          params={"candidates": CHEAP, "folds": 2})
    info = bundle.strategy.fitted_info
    names = [c["candidate"] for c in info["candidates"]]
    assert names[:3] == ["naive_bayes", "linear[C=1.0]", "linear[C=10.0,char_ngram_max=0]"]
    assert any(n.startswith("mean(") for n in names) and any(n.startswith("stack(") for n in names)
    for entry in info["candidates"][:3]:
        assert {"valid_micro_f1", "valid_macro_f1", "seconds"} <= set(entry)
    assert info["chosen"] in names and "best validation (micro + macro) / 2 F1" in info["why"]
    path = bundle.save(tmp_path / "auto")
    loaded = Bundle.load(path)
    np.testing.assert_allclose(loaded.predict_proba(texts), bundle.predict_proba(texts), atol=1e-6)
    assert loaded.manifest["fitted"]["chosen"] == info["chosen"]


def test_auto_stops_at_its_budget_with_a_fake_clock(toy):
    texts, label_sets, labels, _ = toy
    auto = get_strategy("auto")(labels, budget=100, candidates=[
        ["naive_bayes", {}, 1], ["linear", {}, 1], ["linear", {"C": 3.0}, 1], ["knn", {}, 1]])
    ticks = itertools.count(0, 30)  # every look at the clock costs 30 "seconds"
    auto.clock = lambda: float(next(ticks))
    auto.fit(texts, label_sets, valid=(texts, label_sets))
    report = auto.fitted_info["candidates"]
    skipped = [c for c in report if "skipped" in c]
    assert skipped and all("budget" in c["skipped"] for c in skipped)
    assert report[0]["candidate"] == "naive_bayes" and "skipped" not in report[0]
    assert report[-1]["candidate"].startswith(("knn", "stack", "mean")) or "skipped" in report[-1]
    assert "knn" not in [m.name for m in auto.members]


def test_transformer_candidates_get_the_remaining_budget(toy, monkeypatch):
    texts, label_sets, labels, _ = toy
    seen = {}
    real = get_strategy("naive_bayes")

    class Budgeted(real):  # stands in for finetune: records the budget it was given
        name = "finetune"

        def __init__(self, labels, descriptions=None, **params):
            seen.update(params)
            super().__init__(labels, descriptions)

        def fit(self, *args, **kwargs):
            super().fit(*args, **kwargs)
            self.fitted_info = {"steps": 7, "stopped_by_budget": True}
            return self

    monkeypatch.setitem(__import__("labeler.strategies", fromlist=["REGISTRY"]).REGISTRY, "finetune", Budgeted)
    auto = get_strategy("auto")(labels, budget=1000, candidates=[["finetune", {}]])
    auto.fit(texts, label_sets, valid=(texts, label_sets))
    assert 0 < seen["max_seconds"] <= 500  # half of what is left: the rest is for what it does not bound
    # the manifest says what budget it got and how far it trained in it
    entry = auto.fitted_info["candidates"][0]
    assert entry["max_seconds"] == round(seen["max_seconds"], 1)
    assert entry["steps"] == 7 and entry["stopped_by_budget"] is True
    tiny = get_strategy("auto")(labels, budget=60, candidates=[["naive_bayes", {}], ["finetune", {}]])
    tiny.fit(texts, label_sets, valid=(texts, label_sets))
    assert "at least" in tiny.fitted_info["candidates"][1]["skipped"]


def test_default_candidates_leave_finetune_to_gpu_machines(toy, monkeypatch):
    """With the default candidates (``transformers="auto"``), setfit is tried on every machine,
    with or without native bf16, and finetune only where torch sees CUDA, the manifest saying why
    it was not; ``transformers=true`` tries it anyway, ``false`` neither; candidates named
    explicitly are always tried."""
    import labeler.hf
    import labeler.strategies.auto as auto_module

    texts, label_sets, labels, _ = toy
    tried = []
    real = get_strategy("naive_bayes")

    def fake(name):
        class Fake(real):  # stands in for a transformer strategy: records that it was tried
            def __init__(self, labels, descriptions=None, **params):
                tried.append(name)
                super().__init__(labels, descriptions)
        Fake.name = name
        return Fake

    registry = __import__("labeler.strategies", fromlist=["REGISTRY"]).REGISTRY
    for name in ("setfit", "finetune"):
        monkeypatch.setitem(registry, name, fake(name))
    # the cheap defaults as naive Bayes, so that the test needs no encoder
    monkeypatch.setattr(auto_module, "DEFAULT_CANDIDATES", [["naive_bayes", {}, 1], ["setfit", {}, 300],
                                                            ["finetune", {}, 400]])

    def fit(**params):
        auto = get_strategy("auto")(labels, budget=10_000, ensembles=False, **params)
        auto.fit(texts, label_sets, valid=(texts, label_sets))
        return {c["candidate"]: c.get("skipped") for c in auto.fitted_info["candidates"]}

    monkeypatch.setattr(labeler.hf, "pick_device", lambda requested=None: "cpu")
    for bf16 in (False, True):  # with or without AVX-512 BF16 / AMX
        monkeypatch.setattr(labeler.hf, "native_bf16", lambda device, bf16=bf16: bf16)
        tried.clear()
        report = fit()
        assert tried == ["setfit"] and report["setfit"] is None and "no CUDA" in report["finetune"]
    tried.clear()
    fit(transformers=True)
    assert tried == ["setfit", "finetune"]
    monkeypatch.setattr(labeler.hf, "pick_device", lambda requested=None: "cuda")
    tried.clear()
    assert fit() == {"naive_bayes": None, "setfit": None, "finetune": None} and tried == ["setfit", "finetune"]
    monkeypatch.setattr(labeler.hf, "pick_device", lambda requested=None: "cpu")
    tried.clear()
    assert "transformers=false" in fit(transformers=False)["setfit"]
    fit(candidates=[["naive_bayes", {}], ["finetune", {}]])
    assert tried == ["finetune"]


def test_default_setfit_candidate_is_its_linear_head():
    """The default list's setfit is the tuned encoder under a linear head, with the steps that
    were measured (experiments/README.md), and its parameters are valid."""
    import labeler.strategies.auto as auto_module

    (params,) = [c[1] for c in auto_module.DEFAULT_CANDIDATES if c[0] == "setfit"]
    assert params == {"head": "linear", "max_steps": 200, "max_length": 64}
    assert get_strategy("setfit").check_params(params)["head"] == "linear"


def test_candidate_names_show_what_auto_parameters_resolved_to(toy, tiny_bert, monkeypatch):
    """The manifest names a member by the parameters it really used: quantize=auto shows as
    quantize=True or False, so a maintainer can tell an int8 bundle from a float one."""
    import labeler.encoders

    monkeypatch.setattr(labeler.encoders, "fast_int8_cpu", lambda: False)
    texts, label_sets, labels, _ = toy
    auto = get_strategy("auto")(labels, ensembles=False, candidates=[
        ["linear", {"features": "embedding", "model": str(tiny_bert), "quantize": "auto"}]])
    auto.fit(texts, label_sets, valid=(texts, label_sets))
    name = auto.fitted_info["candidates"][0]["candidate"]
    assert "quantize=False" in name and auto.fitted_info["chosen"] == name


def test_default_encoder_members_take_autos_quantize():
    """The default candidates' encoder members (linear on embeddings or both, knn) get auto's
    ``quantize`` (default "auto": int8 where they run on a CPU with AVX-512); candidates given explicitly
    keep their own."""
    auto = get_strategy("auto")(["a", "b"])
    encoders = [(n, p) for n, p, _, _ in auto._candidates() if n == "knn" or p.get("features") in ("embedding", "both")]
    assert len(encoders) == 3 and all(p["quantize"] == "auto" for _, p in encoders)
    off = get_strategy("auto")(["a", "b"], quantize=False)._candidates()
    assert [p["quantize"] for n, p, _, _ in off if "quantize" in p] == [False, False, False]
    given = get_strategy("auto")(["a", "b"], quantize=False, candidates=[["knn", {"quantize": True}]])._candidates()
    assert given[0][1] == {"quantize": True}


def test_auto_without_validation_holds_out_part_of_train(toy):
    texts, label_sets, labels, _ = toy
    texts, label_sets = texts * 3, label_sets * 3  # enough to hold a quarter out
    bundle = Bundle.train("auto", texts, label_sets, labels=labels, params={"candidates": CHEAP[:2]})
    assert bundle.strategy.fitted_info["validation"].startswith("hold-out of")
    assert bundle.manifest["validation_from"] == "training hold-out"
    assert bundle.decision.stats  # tuned on the hold-out, not a default 0.5
    with pytest.raises(ValueError, match="at least 8"):
        get_strategy("auto")(labels, candidates=CHEAP).fit(texts[:5], label_sets[:5])


def test_unknown_candidate_and_failures(toy):
    texts, label_sets, labels, _ = toy
    # checked when auto is built, before anything is fitted
    with pytest.raises(ParameterError, match="unknown strategy 'magic'"):
        get_strategy("auto")(labels, candidates=[["magic", {}]])
    with pytest.raises(ParameterError, match="features"):
        get_strategy("auto")(labels, candidates=[["naive_bayes", {}], ["linear", {"features": "pixels"}]])
    auto = get_strategy("auto")(labels, candidates=[["linear", {"features": "embedding", "model": "/no/such/model"}],
                                                    ["naive_bayes", {}]])
    auto.fit(texts, label_sets, valid=(texts, label_sets))  # a candidate failing in fit is recorded and skipped
    assert "/no/such/model" in auto.fitted_info["candidates"][0]["failed"]
    assert auto.fitted_info["chosen"] == "naive_bayes"


def test_stack_scores_for_tuning_are_out_of_fold():
    rng = np.random.RandomState(0)
    y = (rng.rand(60, 2) < 0.4).astype(int)
    members = np.stack([np.clip(y + rng.normal(0, 0.4, y.shape), 0.01, 0.99) for _ in range(3)])
    oof = _cross_fit(members, y, folds=5, seed=0)
    fitted = Stacker(2, 3).fit(members, y).predict(members)
    assert oof.shape == fitted.shape == (60, 2)
    assert not np.allclose(oof, fitted)  # in-sample scores would flatter the stack


def test_member_latency_leaves_out_the_first_load():
    """A member's first scoring may load its encoder (its training found every embedding in the
    cache): that is paid once per served bundle, not per issue, so _latency leaves it out."""
    import time

    from labeler.strategies.auto import Auto

    class LoadsOnFirstCall:
        calls = 0

        def predict_proba(self, texts):
            self.calls += 1
            if self.calls == 1:
                time.sleep(0.5)  # loading a model
            return np.zeros((len(texts), 2))

    member = LoadsOnFirstCall()
    assert Auto._latency(member, ["a", "b", "c", "d"]) < 50  # ms per issue, not 125
    assert member.calls == 2


@pytest.mark.parametrize("rank_by, objective, winner, why", [
    ("micro+macro", "micro", "b", "(micro + macro) / 2 F1 0.650"),
    ("objective", "micro", "a", "micro F1 0.900"),
    ("objective", "macro", "b", "macro F1 0.600"),
    ("objective", "micro+macro", "b", "(micro + macro) / 2 F1 0.650"),
    ("objective", "precision=0.9", "a", "micro F1 0.900"),
])
def test_rank_by_decides_which_candidate_wins(rank_by, objective, winner, why):
    """a is better on micro F1, b on macro F1 (the rare labels) and on their mean."""
    from labeler.decision import Objective

    auto = get_strategy("auto")(["x", "y"], rank_by=rank_by, objective=objective, ensembles=False)
    scores = np.zeros((4, 2))
    fitted = [(None, scores, {"candidate": "a", "valid_micro_f1": 0.9, "valid_macro_f1": 0.3}),
              (None, scores, {"candidate": "b", "valid_micro_f1": 0.7, "valid_macro_f1": 0.6})]
    choice = auto._choose(fitted, np.zeros((4, 2)), Objective.parse(objective), [])
    assert choice["name"] == winner and f"best validation {why}" in choice["why"]
