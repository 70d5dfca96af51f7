"""The finetune strategy on a tiny BERT built in the test session (seconds, no hub)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from labeler.bundle import Bundle  # noqa: E402
from labeler.strategies import get_strategy  # noqa: E402

LONG = "Crash when loading " + "x" * 200_000


def make(tiny_bert, labels, **params):
    # min_steps=0 and min_eval_steps=1: the toy set is 3 steps an epoch, evaluated every epoch
    base = {"model": str(tiny_bert), "epochs": 1, "batch_size": 4, "device": "cpu",
            "min_steps": 0, "min_eval_steps": 1}
    return get_strategy("finetune")(labels, **{**base, **params})


def test_fit_predict_save_reload(toy, tiny_bert, tmp_path):
    texts, label_sets, labels, _ = toy
    strategy = make(tiny_bert, labels, epochs=2).fit(texts, label_sets, valid=(texts[:6], label_sets[:6]))
    info = strategy.fitted_info
    assert info["best_epoch"] in (1.0, 2.0) and len(info["valid_micro_f1_by_epoch"]) == 2
    assert set(info["valid_micro_f1_by_epoch"][0]) == {"epoch", "f1_at_0.5", "f1_tuned"}
    assert info["steps"] == 6 and not info["stopped_by_budget"] and info["device"] == "cpu"

    queries = texts[:3] + ["", LONG]
    scores = strategy.predict_proba(queries)
    assert scores.shape == (5, 3) and np.all((scores >= 0) & (scores <= 1))
    assert strategy.predict_proba([]).shape == (0, 3)

    strategy.save(tmp_path / "ft")
    files = {p.name for p in (tmp_path / "ft").iterdir()}
    assert {"model.safetensors", "config.json", "classifier_head.safetensors"} <= files
    assert not any(name.endswith((".bin", ".pkl", ".pt", ".pth")) for name in files)
    reloaded = get_strategy("finetune").load(tmp_path / "ft")
    np.testing.assert_allclose(reloaded.predict_proba(queries), scores, atol=1e-6)
    # no checkpoint folders left behind in the working directory
    assert not (tmp_path / "checkpoints").exists()


def test_training_updates_the_encoder(toy, tiny_bert):
    """Gradients reach the encoder, not only the new head (the loop really fine-tunes)."""
    from transformers import AutoModel

    texts, label_sets, labels, _ = toy
    before = AutoModel.from_pretrained(tiny_bert).embeddings.word_embeddings.weight.detach().clone()
    strategy = make(tiny_bert, labels, max_steps=2, learning_rate=1e-3).fit(texts, label_sets)
    after = strategy.model.encoder.embeddings.word_embeddings.weight.detach().cpu()
    assert not np.allclose(before.numpy(), after.numpy())


def test_cls_pooling_is_the_books_sequence_classifier(toy, tiny_bert, tmp_path):
    texts, label_sets, labels, _ = toy
    strategy = make(tiny_bert, labels, pooling="cls", max_steps=2).fit(texts, label_sets)
    assert strategy.model.config.problem_type == "multi_label_classification"
    assert strategy.model.config.id2label == dict(enumerate(labels))
    scores = strategy.predict_proba(texts[:3] + [""])
    strategy.save(tmp_path / "cls")
    assert not (tmp_path / "cls" / "classifier_head.safetensors").exists()
    reloaded = get_strategy("finetune").load(tmp_path / "cls")
    np.testing.assert_allclose(reloaded.predict_proba(texts[:3] + [""]), scores, atol=1e-6)


def test_one_label_and_no_validation(toy, tiny_bert):
    texts, label_sets, _, _ = toy
    strategy = make(tiny_bert, ["bug"]).fit(texts, label_sets)
    assert strategy.fitted_info["best_epoch"] is None  # no validation: the last epoch is kept
    assert strategy.predict_proba(["", LONG]).shape == (2, 1)


def test_budget_stops_training(toy, tiny_bert):
    texts, label_sets, labels, _ = toy
    by_steps = make(tiny_bert, labels, epochs=5, max_steps=1).fit(texts, label_sets)
    assert by_steps.fitted_info["steps"] == 1
    by_time = make(tiny_bert, labels, epochs=5, max_seconds=0).fit(
        texts, label_sets, valid=(texts[:4], label_sets[:4]))
    info = by_time.fitted_info
    assert info["stopped_by_budget"] and info["steps"] == 1
    assert info["best_epoch"] is not None  # the interrupted epoch was still evaluated


def test_budget_keeps_the_best_checkpoint(toy, tiny_bert, monkeypatch):
    """Stopped by the wall clock in the middle of epoch 3: the weights reached are evaluated
    too, and the weights kept are those of the best evaluation (epoch 2), not the last ones."""
    import itertools

    import torch

    import labeler.strategies.finetune as ft
    from labeler.hf import make_budget_callback

    texts, label_sets, labels, _ = toy
    ticks = itertools.count()  # a fake clock: one "second" per reading, i.e. per step
    snapshots = []  # the model's weights at every evaluation

    def budget(max_seconds, **kwargs):
        callback = make_budget_callback(max_seconds, clock=lambda: float(next(ticks)), **kwargs)

        def on_evaluate(args, state, control, model=None, **rest):
            snapshots.append({k: v.detach().clone() for k, v in model.state_dict().items()})

        callback.on_evaluate = on_evaluate
        return callback

    scripted = iter([0.5, 0.9, 0.4])  # validation micro F1 of epoch 1, epoch 2, the interrupted epoch

    def scores(logits, labels):
        value = next(scripted)
        return {"micro_f1": value, "micro_f1_tuned": value}

    monkeypatch.setattr(ft, "make_budget_callback", budget)
    monkeypatch.setattr(ft, "_validation_scores", scores)
    # 12 issues at batch 4 = 3 steps an epoch; 5 epochs planned, the budget ends step 7
    strategy = make(tiny_bert, labels, epochs=5, max_seconds=7, learning_rate=1e-3).fit(
        texts, label_sets, valid=(texts[:4], label_sets[:4]))
    info = strategy.fitted_info
    assert info["stopped_by_budget"] and info["steps"] == 7 and info["epochs_run"] == 2.333
    assert [row["epoch"] for row in info["valid_micro_f1_by_epoch"]] == [1.0, 2.0, 2.333]
    assert info["best_epoch"] == 2.0 and info["best_valid_micro_f1"] == 0.9

    def same(a, b):
        return all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)

    kept = strategy.model.state_dict()
    assert len(snapshots) == 3 and not same(snapshots[1], snapshots[2])  # training moved on
    assert same(kept, snapshots[1])  # ... and the best checkpoint was reloaded
    assert strategy.predict_proba(texts[:2]).shape == (2, 3)


def test_budget_on_the_real_clock_stops_in_time(toy, tiny_bert):
    """A budget of 1 s on the real clock stops a run planned for hundreds of steps after
    about a second, and the result is a usable model."""
    import time

    texts, label_sets, labels, _ = toy
    started = time.perf_counter()
    strategy = make(tiny_bert, labels, epochs=200, max_seconds=1).fit(
        texts, label_sets, valid=(texts[:4], label_sets[:4]))
    info = strategy.fitted_info
    assert info["stopped_by_budget"] and 1 <= info["steps"] < 600
    assert info["best_epoch"] is not None
    assert time.perf_counter() - started < 60
    assert strategy.predict_proba(texts[:2]).shape == (2, 3)


def test_cuda_request_falls_back_to_cpu(toy, tiny_bert, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the fallback is not exercised")
    texts, label_sets, labels, _ = toy
    with pytest.warns(UserWarning, match="no CUDA"):
        strategy = make(tiny_bert, labels, device="cuda", max_steps=1).fit(texts, label_sets)
    assert strategy.fitted_info["device"] == "cpu"
    strategy.save(tmp_path / "ft")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reloaded = get_strategy("finetune").load(tmp_path / "ft")
    assert reloaded.device == "cpu"


def test_bundle_round_trip(toy, tiny_bert, tmp_path):
    texts, label_sets, labels, _ = toy
    bundle = Bundle.train("finetune", texts, label_sets, labels=labels, valid=(texts, label_sets),
                          params={"model": str(tiny_bert), "epochs": 1, "batch_size": 4, "min_steps": 0})
    assert bundle.manifest["validation"]["n"] == len(texts)
    bundle.save(tmp_path / "bundle")
    again = Bundle.load(tmp_path / "bundle")
    np.testing.assert_allclose(again.predict_proba(texts), bundle.predict_proba(texts), atol=1e-6)
    assert again.manifest["fitted"]["steps"] == 3


def test_bad_parameters_and_data(tiny_bert):
    with pytest.raises(ValueError, match="select_by"):
        make(tiny_bert, ["bug"], select_by="loss").fit(["a"], [["bug"]])
    with pytest.raises(ValueError, match="pooling"):
        make(tiny_bert, ["bug"], pooling="max").fit(["a"], [["bug"]])
    with pytest.raises(ValueError, match="finetune: unknown parameter 'epoch' .did you mean 'epochs'"):
        get_strategy("finetune")(["bug"], epoch=3)
    with pytest.raises(ValueError, match="at least one"):
        make(tiny_bert, ["bug"]).fit([], [])
    with pytest.raises(RuntimeError, match="not fitted"):
        make(tiny_bert, ["bug"]).predict_proba(["x"])


def test_same_seed_same_model(toy, tiny_bert):
    texts, label_sets, labels, _ = toy
    a = make(tiny_bert, labels, max_steps=2, seed=3).fit(texts, label_sets).predict_proba(texts[:4])
    b = make(tiny_bert, labels, max_steps=2, seed=3).fit(texts, label_sets).predict_proba(texts[:4])
    np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.slow
def test_embedded_minilm_one_step(toy, tmp_path):
    """The shipped encoder (all-MiniLM-L6-v2, no hub) through fit, save and load."""
    texts, label_sets, labels, _ = toy
    strategy = get_strategy("finetune")(labels, max_steps=1, batch_size=4, device="cpu")
    strategy.fit(texts[:4], label_sets[:4])
    assert strategy.model.encoder.config.num_hidden_layers == 6
    strategy.save(tmp_path / "ft")
    reloaded = get_strategy("finetune").load(tmp_path / "ft")
    np.testing.assert_allclose(reloaded.predict_proba(texts[:2]), strategy.predict_proba(texts[:2]), atol=1e-5)


def test_small_slices_get_min_steps_and_sparser_evaluation(toy, tiny_bert):
    texts, label_sets, labels, _ = toy
    strategy = make(tiny_bert, labels, epochs=1, min_steps=6, min_eval_steps=6).fit(
        texts, label_sets, valid=(texts[:4], label_sets[:4]))
    info = strategy.fitted_info
    assert info["steps"] == 6 and info["epochs_planned"] == 2 and info["eval_every_epochs"] == 2
    assert [row["epoch"] for row in info["valid_micro_f1_by_epoch"]] == [2.0]


def _documented_defaults(text: str) -> dict[str, str]:
    """``name`` [value] in a docstring and | `name` | value | in a Markdown table."""
    import re

    found = {m.group(1): m.group(2) for m in re.finditer(r"``(\w+)`` \[([^\]]+)\]", text)}
    found.update({m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)` \| ([^|]+?) \|", text, re.M)})
    return found


def _same_value(documented: str, default) -> bool:
    documented = documented.strip().strip('`"')
    if default is None:
        return documented in ("None", "none", "null")
    if isinstance(default, bool):
        return documented.lower() == str(default).lower()
    if isinstance(default, (int, float)):
        return float(documented) == float(default)
    return documented == str(default)


@pytest.mark.parametrize("name", ["finetune", "setfit"])
def test_documented_defaults_match_the_params(name):
    """The docstring and README-finetune.md tables say what the Params classes do (the CPU
    budget defaults in particular)."""
    from pathlib import Path

    import labeler.strategies

    cls = get_strategy(name)
    defaults = {field: info.default for field, info in cls.Params.model_fields.items()}
    readme = (Path(labeler.strategies.__file__).parent / "README-finetune.md").read_text()
    section = readme.split(f"## `{name}`", 1)[1].split("\n## ", 1)[0]
    for source, text in (("docstring", cls.__doc__), ("README-finetune.md", section)):
        documented = _documented_defaults(text)
        for key in ("max_seconds", "max_steps", "epochs"):
            assert key in documented, f"{source} of {name} does not document {key}"
        for key, value in documented.items():
            if key in defaults:
                assert _same_value(value, defaults[key]), f"{source} of {name}: {key} [{value}] != {defaults[key]!r}"
