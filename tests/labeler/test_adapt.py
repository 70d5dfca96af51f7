"""Domain adaptation (labeler.adapt, `issue-labeler adapt`) on the tiny BERT of conftest: it
trains, reports held-out perplexity, stops on its budget, resumes, never sees evaluation
issues, and its output is a `model=` for every encoder strategy."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from labeler.adapt import adapt, check_params, gather_texts
from labeler.cli import app
from labeler.data import LoadOptions, write_jsonl
from labeler.errors import LabelerError, ParameterError
from labeler.strategies import get_strategy

EXAMPLES = Path(__file__).resolve().parents[2] / "labeler" / "examples"
_TOPICS = ["Crash when loading a parquet file", "Add streaming support for audio datasets",
           "Typo in the documentation of load_dataset", "Error when calling map with num_proc",
           "Feature request: support for zstd compression", "Docs: the tutorial page has a broken link",
           "Bug: wrong number of rows after filter", "Exception in to_pandas with nested columns"]
#: 40 short issue texts (title, blank line, body)
CORPUS = [f"{topic}\n\nseen in version {v}" for v in ("1.0", "2.1", "3.2", "4.0", "5.5") for topic in _TOPICS]
FAST = {"epochs": 2, "batch_size": 8, "max_length": 32, "learning_rate": 1e-3, "device": "cpu", "heldout": 0.2}


@pytest.fixture(scope="module")
def adapted(tiny_bert, tmp_path_factory):
    """(encoder directory, report) of one adaptation of the tiny BERT on CORPUS."""
    out = tmp_path_factory.mktemp("adapted") / "encoder"
    return out, adapt(CORPUS, out, model=str(tiny_bert), **FAST)


def test_report_and_files(adapted):
    out, report = adapted
    assert report["texts"] == {"train": 32, "heldout": 8}
    assert report["new_mlm_head"] is True  # conftest's tiny BERT, like MiniLM, has no MLM head
    assert report["steps"] == report["steps_this_run"] == 2 * math.ceil(32 / 8)
    assert not report["stopped_by_budget"] and report["resumed_from"] is None
    before, after = report["before"], report["after"]
    assert before["masked_tokens"] == after["masked_tokens"] > 0  # the same masked tokens, before and after
    assert after["loss"] < before["loss"]
    assert after["perplexity"] == pytest.approx(math.exp(after["loss"]), rel=1e-3)
    assert json.loads((out / "adapt.json").read_text()) == json.loads(json.dumps(report))
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert (out / "checkpoints" / f"checkpoint-{report['steps']}").is_dir()


def test_output_loads_as_encoder_classifier_mlm_and_sentence_transformer(adapted):
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification

    out, _ = adapted
    assert AutoModel.from_pretrained(out).config.hidden_size == 32
    assert AutoModelForSequenceClassification.from_pretrained(out, num_labels=3).config.num_labels == 3
    _, info = AutoModelForMaskedLM.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"]  # the trained MLM head was saved with the encoder
    st = SentenceTransformer(str(out), device="cpu")
    assert st[1].get_config_dict()["pooling_mode"] == "mean"  # as the encoders treat any plain BERT directory
    assert st.encode(["crash when loading"]).shape == (1, 32)


STRATEGY_PARAMS = {
    "finetune": {"epochs": 1, "batch_size": 4, "min_steps": 0, "max_steps": 2, "device": "cpu"},
    "setfit": {"num_iterations": 1, "batch_size": 4, "max_steps": 2, "device": "cpu"},
    "knn": {"device": "cpu"},
    "zero_shot": {"device": "cpu"},
    "linear": {"features": "embedding", "device": "cpu"},
}


@pytest.mark.parametrize("name", sorted(STRATEGY_PARAMS))
def test_output_is_a_model_for_every_encoder_strategy(adapted, toy, name, tmp_path):
    out, _ = adapted
    texts, label_sets, labels, descriptions = toy
    strategy = get_strategy(name)(labels, descriptions, model=str(out), **STRATEGY_PARAMS[name])
    strategy.fit(texts, label_sets)
    scores = strategy.predict_proba(texts[:3])
    assert scores.shape == (3, len(labels)) and np.all((scores >= 0) & (scores <= 1))
    strategy.save(tmp_path / name)
    assert np.allclose(type(strategy).load(tmp_path / name).predict_proba(texts[:3]), scores, atol=1e-5)


def test_budget_stops_then_resume_continues(tiny_bert, tmp_path):
    out = tmp_path / "encoder"
    stopped = adapt(CORPUS, out, model=str(tiny_bert), budget=0, **FAST)
    assert stopped["stopped_by_budget"] and stopped["steps"] == 1  # the step in progress ends
    assert (out / "checkpoints" / "checkpoint-1").is_dir() and (out / "model.safetensors").is_file()

    with pytest.raises(LabelerError, match="--resume"):  # a fresh start would mix with that checkpoint
        adapt(CORPUS, out, model=str(tiny_bert), **FAST)
    with pytest.raises(LabelerError, match="seed"):
        adapt(CORPUS, out, model=str(tiny_bert), resume=True, **{**FAST, "seed": 1})
    with pytest.raises(LabelerError, match="texts"):
        adapt(CORPUS[:-1], out, model=str(tiny_bert), resume=True, **FAST)

    resumed = adapt(CORPUS, out, model=str(tiny_bert), resume=True, **FAST)
    assert resumed["resumed_from"] == "checkpoint-1"
    assert resumed["steps"] == 2 * math.ceil(32 / 8) and resumed["steps_this_run"] == resumed["steps"] - 1
    assert not resumed["stopped_by_budget"]
    assert resumed["before"] == stopped["before"]  # the same held-out test, measured on the same source model
    more = adapt(CORPUS, out, model=str(tiny_bert), resume=True, **{**FAST, "epochs": 3})  # epochs may grow
    assert more["steps"] == 3 * 4 and more["steps_this_run"] == 4

    with pytest.raises(LabelerError, match="nothing to resume"):
        adapt(CORPUS, tmp_path / "empty", model=str(tiny_bert), resume=True, **FAST)


def test_bad_options_fail_before_anything_loads(tmp_path):
    with pytest.raises(ParameterError, match="mlm_probability"):
        check_params({"mlm_probability": 1.5})
    with pytest.raises(ParameterError, match="heldout"):
        check_params({"heldout": 2.5})
    with pytest.raises(ParameterError, match="did you mean 'epochs'"):
        check_params({"epoch": 2})
    with pytest.raises(ParameterError, match="no training text"):
        adapt(CORPUS[:3], tmp_path / "x", model="does-not-matter/at-all/here", heldout=3)


def test_evaluation_issues_are_left_out_by_id_or_text(tmp_path):
    write_jsonl(tmp_path / "issues.jsonl", [
        {"id": 1, "title": "Crash on start", "body": "segfault", "labels": ["bug"]},
        {"id": 2, "title": "Add zstd", "body": None, "labels": []},
        {"id": 3, "title": "Docs typo", "body": "fix", "labels": []},
        {"id": 4, "title": "Docs typo", "body": "fix"},
        {"id": 5, "title": "Bump version", "body": "", "pull_request": {"url": "x"}},
    ])
    write_jsonl(tmp_path / "test.jsonl", [
        {"id": 1, "title": "Crash on start (edited)", "body": "segfault"},  # same id
        {"id": 99, "title": "Add zstd", "body": ""},  # same text
    ])
    corpus = gather_texts([(tmp_path / "issues.jsonl", LoadOptions(include_pull_requests=False))],
                          exclude=[tmp_path / "test.jsonl"])
    assert corpus.texts == ["Docs typo\n\nfix"]
    assert (corpus.read, corpus.excluded, corpus.duplicates, corpus.pull_requests) == (5, 2, 1, 1)
    with pytest.raises(LabelerError, match="no issue text left"):
        gather_texts([tmp_path / "test.jsonl"], exclude=[tmp_path / "test.jsonl"])


runner = CliRunner()


def test_cli_leaves_out_a_split_directorys_evaluation_issues(tiny_bert, tmp_path):
    split = runner.invoke(app, ["split", str(EXAMPLES / "issues.jsonl"), "--label-map", str(EXAMPLES / "labels.yml"),
                                "-o", str(tmp_path / "split")])
    assert split.exit_code == 0, split.output
    sizes = json.loads((tmp_path / "split" / "split.json").read_text())["sizes"]
    held = sizes["valid"] + sizes["test"]
    base = ["--model", str(tiny_bert), "--epochs", "1", "--batch-size", "8", "--max-length", "32", "--no-progress"]

    result = runner.invoke(app, ["adapt", str(EXAMPLES / "issues.jsonl"), "--exclude", str(tmp_path / "split"),
                                 "-o", str(tmp_path / "enc"), *base])
    assert result.exit_code == 0, result.output
    assert f"{held} excluded as evaluation issues" in result.stderr
    assert "held-out perplexity" in result.stdout and "before " in result.stdout and "after " in result.stdout
    report = json.loads((tmp_path / "enc" / "adapt.json").read_text())
    assert report["data"]["excluded"] == held
    assert report["texts"]["train"] + report["texts"]["heldout"] == report["data"]["texts"]

    # a split directory as input: its train and unlabelled files, its valid and test issues excluded
    result = runner.invoke(app, ["adapt", str(tmp_path / "split"), "-o", str(tmp_path / "enc2"), *base])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "enc2" / "adapt.json").read_text())
    assert report["data"]["texts"] == sizes["train"] + sizes["unlabelled"]
    assert len(report["data"]["excluded_from"]) == 2

    result = runner.invoke(app, ["adapt", str(tmp_path / "split"), "-o", str(tmp_path / "enc3"), "--heldout", "1.5"])
    assert result.exit_code == 2 and result.stderr.startswith("error: --heldout")
