"""experiments/benchmark.py: the pieces that are not a long run (timing, parameters)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
from pathlib import Path

import numpy as np
import pytest

from labeler.bundle import Bundle
from tests.experiments.conftest import load_script



@pytest.fixture(scope="module")
def benchmark():
    return load_script("benchmark")


def test_time_predictions_encodes_without_the_cache_and_leaves_the_environment(benchmark, toy, tiny_bert):
    texts, label_sets, labels, _ = toy
    bundle = Bundle.train("knn", texts, label_sets, labels=labels, params={"model": str(tiny_bert), "k": 2, "m": 1})
    bundle.predict_proba(texts)  # now every text is in the cache
    encoder = bundle.strategy.encoder
    before, env = dict(encoder.stats), dict(os.environ)
    assert benchmark.time_predictions(bundle, texts) > 0
    assert dict(os.environ) == env
    assert encoder.stats["encoded"] == before["encoded"] + len(texts)


def test_params_use_the_cli_parser_and_are_checked_first(benchmark):
    assert benchmark.parse_params(["knn.k=3", "knn.model=/some/dir", "naive_bayes.alpha=0.5"]) == \
        {"knn": {"k": 3, "model": "/some/dir"}, "naive_bayes": {"alpha": 0.5}}
    with pytest.raises(SystemExit, match="STRATEGY.KEY=VALUE"):
        benchmark.parse_params(["k=3"])
    with pytest.raises(SystemExit, match="knn: unknown parameter 'kk'"):
        benchmark.parse_params(["knn.kk=3"])
    with pytest.raises(SystemExit, match="unknown strategy 'knnn'"):
        benchmark.parse_params(["knnn.k=3"])
    with pytest.raises(SystemExit, match="unknown decision rule"):
        benchmark.main(["--decision", "sometimes", "--data-dir", "/nonexistent"])
    with pytest.raises(SystemExit, match="alhpa"):
        benchmark.main(["--param", "naive_bayes.alhpa=1", "--data-dir", "/nonexistent"])


def test_augment_option_is_checked_first_and_names_the_rows(benchmark, tmp_path):
    assert benchmark.parse_augment("synonym") == ("synonym", 1)
    assert benchmark.parse_augment("contextual:3") == ("contextual", 3)
    with pytest.raises(SystemExit, match="METHOD\\[:COPIES\\]"):
        benchmark.parse_augment("synonym:0")
    with pytest.raises(SystemExit, match="unknown augmentation 'eda'"):
        benchmark.main(["--augment", "eda", "--data-dir", "/nonexistent"])
    base = {"dataset": "sklearn", "strategy": "naive_bayes", "variant": "default", "params": {}, "objective": "micro",
            "seed": 0, "slice": "8", "n_train": 8, "micro_f1": 0.5, "macro_f1": 0.4, "train_seconds": 0.1,
            "ms_per_issue": 1.0, "machine": {"cores": 2, "gpu": None}}
    augmented = {**base, "micro_f1": 0.6, "augment": {"method": "synonym", "copies": 2, "seed": 0, "model": None}}
    results = tmp_path / "sklearn.jsonl"
    results.write_text(json.dumps(base) + "\n" + json.dumps(augmented) + "\n")
    assert len(benchmark.load_rows(results)) == 2  # an augmented run is not a re-run of the plain one
    text = benchmark.report(argparse.Namespace(dataset="sklearn", results=str(results)))
    assert "| naive_bayes +synonym:2 | 0.600" in text and "| naive_bayes | 0.500" in text
    assert "--strategies naive_bayes --seeds 0-0 --augment synonym:2" in text


def test_time_split_rows_have_their_own_file_and_say_so(benchmark, tmp_path):
    row = {"dataset": "hf-datasets", "strategy": "linear", "variant": "default", "params": {}, "objective": "micro",
           "split": "time", "seed": 1, "slice": "all", "n_train": 500, "micro_f1": 0.8, "macro_f1": 0.5,
           "train_seconds": 1.0, "ms_per_issue": 2.0, "machine": {"cores": 2, "gpu": None}}
    results = tmp_path / "hf-datasets-time.jsonl"
    results.write_text(json.dumps(row) + "\n")
    text = benchmark.report(argparse.Namespace(dataset="hf-datasets", results=str(results), split="time"))
    assert text.startswith("# Low-data benchmark: hf-datasets (time-ordered split)")
    assert "--dataset hf-datasets --split time --strategies linear --seeds 1-1" in text
    assert "the newest 25% test" in text


def test_report_says_where_auto_falls_short_of_the_best_row(benchmark, tmp_path):
    """auto [cpu] is 'ok' where its mean plus one std reaches the best row, else the gap. The best
    row is a mean over every seed: a row run with fewer seeds (one lucky seed) sets no bar."""
    def row(strategy, seed, slice_, micro, macro, variant="default"):
        return {"dataset": "sklearn", "strategy": strategy, "variant": variant, "params": {}, "objective": "micro",
                "seed": seed, "slice": slice_, "n_train": 8, "micro_f1": micro, "macro_f1": macro,
                "train_seconds": 0.1, "ms_per_issue": 1.0, "machine": {"cores": 2, "gpu": None}}
    rows = [row("auto", 0, "8", 0.70, 0.30, "cpu"), row("auto", 1, "8", 0.72, 0.30, "cpu"),  # 0.71 ± 0.01
            row("linear", 0, "8", 0.72, 0.40), row("linear", 1, "8", 0.72, 0.40),
            row("linear", 0, "8", 0.99, 0.99, "lucky"),
            row("auto", 0, "16", 0.80, 0.50, "cpu"), row("auto", 1, "16", 0.80, 0.50, "cpu"),
            row("linear", 0, "16", 0.70, 0.40), row("linear", 1, "16", 0.70, 0.40)]
    results = tmp_path / "sklearn.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = benchmark.report(argparse.Namespace(dataset="sklearn", results=str(results)))
    assert "| **auto [cpu] within 1 std of the best** | ok / −0.100 | ok / ok |" in text
    assert "| **best (micro F1)**, of the rows with every seed | linear | auto [cpu] |" in text


def test_report_commands_rerun_the_rows_they_list(benchmark, tmp_path):
    """A row's objective becomes --objective (auto's copy of it is not repeated as a --param), and a
    variant with spaces is quoted, so that the printed command makes the same row again."""
    row = {"dataset": "sklearn", "strategy": "auto", "variant": "cpu, micro+macro",
           "params": {"objective": "micro+macro", "budget": 60}, "objective": "micro+macro",
           "seed": 0, "slice": "8", "n_train": 8, "micro_f1": 0.5, "macro_f1": 0.4, "train_seconds": 0.1,
           "ms_per_issue": 1.0, "machine": {"cores": 2, "gpu": None}}
    results = tmp_path / "sklearn.jsonl"
    results.write_text(json.dumps(row) + "\n")
    text = benchmark.report(argparse.Namespace(dataset="sklearn", results=str(results)))
    command = ("python experiments/benchmark.py --dataset sklearn --strategies auto --seeds 0-0 "
               "--param auto.budget=60 --objective micro+macro --variant 'cpu, micro+macro'")
    assert command in text
    assert shlex.split(command)[-2:] == ["--variant", "cpu, micro+macro"]


def test_figure_draws_one_line_per_strategy_and_kind(benchmark):
    """The best-covering, best-scoring variant per strategy; augmented and adapted-encoder rows
    get lines of their own, and an adapted line brings the variant it adapts (faint)."""
    def runs(*scores, slices=("8", "16")):
        return {s: [{"micro_f1": v, "macro_f1": v}] for s, v in zip(slices, scores)}
    groups = {
        ("linear", "tfidf", ""): runs(0.5, 0.6),
        ("linear", "both", ""): runs(0.6, 0.7),
        ("linear", "both, 64 tokens", ""): runs(0.9, slices=("8",)),  # better, but one slice
        ("linear", "embedding", ""): runs(0.4, 0.5),
        ("linear", "embedding-adapted", ""): runs(0.45, 0.55),
        ("linear", "tfidf", "+synonym"): runs(0.55, 0.65),
        ("knn", "default", ""): runs(0.3, 0.4),
        ("knn", "adapted", ""): runs(0.2, 0.3),
    }
    assert benchmark.plot_lines(groups, ["8", "16"]) == [
        (("knn", "adapted", ""), True), (("knn", "default", ""), True),
        (("linear", "both", ""), True), (("linear", "embedding", ""), False),
        (("linear", "embedding-adapted", ""), True), (("linear", "tfidf", "+synonym"), True)]
    assert benchmark._unadapted("adapted-cpu-cut") == "cpu-cut"


def test_table_says_when_a_row_has_fewer_seeds(benchmark, tmp_path):
    def row(strategy, seed, micro):
        return {"dataset": "sklearn", "strategy": strategy, "variant": "default", "params": {}, "objective": "micro",
                "seed": seed, "slice": "8", "n_train": 8, "micro_f1": micro, "macro_f1": 0.2,
                "train_seconds": 0.1, "ms_per_issue": 1.0, "machine": {"cores": 2, "gpu": None}}
    results = tmp_path / "sklearn.jsonl"
    rows = [row("knn", 0, 0.5), row("knn", 1, 0.7), row("finetune", 0, 0.6)]
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = benchmark.report(argparse.Namespace(dataset="sklearn", results=str(results)))
    assert "| knn | 0.600±0.100 / 0.200±0.000 |" in text
    assert "| finetune (1 seed) | 0.600 / 0.200 |" in text  # no ±0.000 that one seed cannot give


def test_report_marks_rows_run_under_other_defaults_and_gives_each_setting_its_command(benchmark, tmp_path):
    """A row records the parameters it really trained with; where today's defaults differ the
    table marks it and says which key changed. Seeds run with different parameters (sklearn's
    per-seed adapted encoders) get a command each."""
    from labeler.strategies import get_strategy

    then = {**get_strategy("linear").check_params({}), "description_examples": 0}
    def row(seed, params, effective=None):
        r = {"dataset": "sklearn", "strategy": "linear", "variant": "adapted", "params": params, "objective": "micro",
             "seed": seed, "slice": "8", "n_train": 8, "micro_f1": 0.5, "macro_f1": 0.4, "train_seconds": 0.1,
             "ms_per_issue": 1.0, "machine": {"cores": 2, "gpu": None}}
        return {**r, "effective_params": effective} if effective else r
    assert benchmark.drifted(row(0, {}, then)) == {"description_examples": (0, 10)}
    assert benchmark.drifted(row(0, {})) == {}  # rows from before effective_params: unknown, not flagged
    older = {k: v for k, v in then.items() if k != "quantize"}  # run before quantize existed
    assert benchmark.drifted(row(0, {}, older)) == {"description_examples": (0, 10)}
    rows = [row(0, {"model": "enc-seed0"}, {**then, "model": "enc-seed0"}),
            row(1, {"model": "enc-seed1"}), row(2, {"model": "enc-seed1"})]
    results = tmp_path / "sklearn.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = benchmark.report(argparse.Namespace(dataset="sklearn", results=str(results)))
    assert "| linear ‡ |" in text
    assert "linear: `description_examples` was 0, now 10" in text
    assert "--strategies linear --seeds 0-0 --param 'linear.model=\"enc-seed0\"' --variant adapted" in text
    assert "--strategies linear --seeds 1-2 --param 'linear.model=\"enc-seed1\"' --variant adapted" in text


def test_auto_rows_record_the_default_candidate_list_and_flag_it_when_it_changes(benchmark):
    """auto's default candidates are a default no parameter shows: a row run on them records the
    list, so a later change of the list marks the row like any other changed default."""
    from labeler.strategies.auto import DEFAULT_CANDIDATES

    now = benchmark.effective_params("auto", {})
    assert now["default_candidates"] == json.loads(json.dumps(DEFAULT_CANDIDATES))
    assert "default_candidates" not in benchmark.effective_params("auto", {"auto": {"candidates": ["naive_bayes"]}})
    old_list = [c for c in now["default_candidates"] if c[0] != "setfit"]
    row = {"strategy": "auto", "params": {}, "effective_params": {**now, "default_candidates": old_list}}
    assert benchmark.drifted(row) == {"default_candidates": (old_list, now["default_candidates"])}
    assert benchmark.drifted({**row, "effective_params": now}) == {}
    # rows from before the list was recorded: unknown, not flagged
    assert benchmark.drifted({**row, "effective_params": {k: v for k, v in now.items() if k != "default_candidates"}}) == {}
    # the footnote names only the entries that differ, not both lists
    text = benchmark.drift_text("default_candidates", old_list, now["default_candidates"])
    setfit = next(c for c in now["default_candidates"] if c[0] == "setfit")
    assert text == f"`default_candidates` had nothing more where today's has {json.dumps(setfit)}"
    assert benchmark.drift_text("C", 1, 3) == "`C` was 1, now 3"


def test_saved_scores_reproduce_each_row_and_rules_on_scores_reads_them(benchmark, shared_data, tmp_path, capsys):
    """--save-scores keeps what each run tuned its rule on and its test scores; the pooled rule
    of rules_on_scores.py, tuned again on them, gives the row's own F1, and averaging a
    strategy with out-of-fold rows and one without falls back to validation's rows."""
    results, scores = tmp_path / "rows.jsonl", tmp_path / "scores"
    benchmark.main(["--dataset", "hf-datasets", "--strategies", "naive_bayes,linear", "--seeds", "0",
                    "--slices", "64", "--objective", "micro+macro", "--data-dir", str(shared_data),
                    "--results", str(results), "--save-scores", str(scores)])
    rows = {r["strategy"]: r for r in map(json.loads, results.read_text().splitlines())}
    rules = load_script("rules_on_scores")
    runs = {}
    for name, row in rows.items():
        path = Path(row["scores_file"])
        assert path == scores / "hf-datasets" / name / "seed0-64.npz"
        runs[name] = rules.load_runs(path.parent)[(0, "64")]
        assert runs[name]["test_scores"].shape == runs[name]["test_y"].shape == (row["n_test"], 11)
        assert str(runs[name]["objective"]) == "micro+macro"
        pooled = rules.evaluate([runs[name]], "logodds", None)["pooled"]
        assert pooled == pytest.approx((row["micro_f1"], row["macro_f1"]))
    assert runs["naive_bayes"]["tuning_y"].shape[0] == rows["naive_bayes"]["n_valid"]
    assert runs["linear"]["tuning_y"].shape[0] == rows["linear"]["n_valid"] + rows["linear"]["n_train"]
    both = rules.evaluate([runs["linear"], runs["naive_bayes"]], "prob", None)
    assert both["pooled"] == both["validation"]
    rules.main([str(scores / "hf-datasets" / "linear"), str(scores / "hf-datasets" / "naive_bayes")])
    out = capsys.readouterr().out
    assert "linear + naive_bayes (mean of logodds)" in out and "| global |" in out and "64 (1 seeds)" in out


def test_rules_on_scores_refuses_runs_of_different_splits(tmp_path):
    rules = load_script("rules_on_scores")
    a = {"labels": np.array(["bug", "docs"]), "n_valid": 2, "test_y": np.array([[1, 0], [0, 1]]),
         "tuning_y": np.array([[1, 0], [0, 1]]), "tuning_scores": np.full((2, 2), .5),
         "test_scores": np.full((2, 2), .5), "objective": np.array("micro")}
    b = {**a, "test_y": np.array([[0, 1], [1, 0]])}
    with pytest.raises(SystemExit, match="different splits"):
        rules.evaluate([a, b], "logodds", None)
    with pytest.raises(SystemExit, match="no seed"):
        rules.load_runs(tmp_path)
