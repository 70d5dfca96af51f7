"""The command line, end to end on the shipped example data: split, train, evaluate,
predict, and one clear line on stderr for bad input."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labeler.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "labeler" / "examples"
runner = CliRunner()


def run(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    result = run("split", EXAMPLES / "issues.jsonl", "--label-map", EXAMPLES / "labels.yml", "--seed", 1, "-o", tmp / "split")
    assert result.exit_code == 0, result.output
    assert "training slices" in result.output
    result = run("train", tmp / "split" / "train.jsonl", "--label-map", EXAMPLES / "labels.yml", "--strategy", "naive_bayes",
                 "--valid", tmp / "split" / "valid.jsonl", "-o", tmp / "bundle", "-p", "alpha=0.5")
    assert result.exit_code == 0, result.output
    assert "validation micro F1" in result.output
    return tmp


def test_evaluate_json(trained):
    result = run("evaluate", trained / "bundle", trained / "split" / "test.jsonl", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"micro_f1", "macro_f1", "per_label", "n"} <= set(data)
    assert set(data["per_label"]) == {"bug", "enhancement", "documentation", "question"}


def test_predict_flags_and_stdin(trained):
    result = run("predict", trained / "bundle", "--title", "Crash with traceback", "--body", "segfault", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["labels"][0]["label"] == "bug"
    lines = "\n".join(json.dumps({"number": n, "title": t, "body": None}) for n, t in [(1, "Typo in docs"), (2, "Crash")])
    result = run("predict", trained / "bundle", input=lines + "\n")
    assert result.exit_code == 0 and result.stdout.startswith("#1: ")
    result = run("predict", trained / "bundle", input='{"title": "ok"}\nnot json\n')
    assert result.exit_code == 2 and "stdin, line 2" in result.stderr


def test_train_on_split_directory(trained, tmp_path):
    result = run("train", trained / "split", "-s", "naive_bayes", "-o", tmp_path / "b2")
    assert result.exit_code == 0, result.output


CHEAP = '[["naive_bayes", {}], ["linear", {"C": 1.0}]]'


def test_auto_is_the_default_and_says_what_it_chose(trained, tmp_path):
    result = run("train", trained / "split", "--budget", "120", "-p", f"candidates={CHEAP}",
                 "--objective", "precision=0.6", "-o", tmp_path / "auto")
    assert result.exit_code == 0, result.output
    assert "training auto on" in result.stderr and "budget 120s" in result.stderr
    assert "auto chose " in result.stdout
    manifest = json.loads((tmp_path / "auto" / "manifest.json").read_text())
    assert manifest["strategy"] == "auto" and manifest["params"]["objective"] == "precision=0.6"
    assert manifest["decision"]["objective"] == "precision=0.6"
    assert [c["candidate"] for c in manifest["fitted"]["candidates"]][:2] == ["naive_bayes", "linear[C=1.0]"]
    stats = manifest["decision"]["stats"]
    assert all({"threshold", "precision", "recall", "support"} <= set(v) for v in stats.values())


def test_single_label_data_is_one_exclusive_group(tmp_path):
    rows = ["title,body,label"] + [f"crash {i},traceback error {i},bug" for i in range(8)] + \
           [f"add feature {i},please support {i},enhancement" for i in range(8)] + \
           [f"how do I {i},question about usage {i},question" for i in range(8)]
    (tmp_path / "one.csv").write_text("\n".join(rows) + "\n")
    common = ["--label-column", "label", "-s", "naive_bayes", "--valid", tmp_path / "one.csv"]
    result = run("train", tmp_path / "one.csv", *common, "-o", tmp_path / "b")
    assert result.exit_code == 0, result.output
    assert "treated as mutually exclusive" in result.stderr
    groups = json.loads((tmp_path / "b" / "manifest.json").read_text())["decision"]["exclusive"]
    assert groups == [["bug", "enhancement", "question"]]
    result = run("train", tmp_path / "one.csv", *common, "--exclusive", "none", "-o", tmp_path / "c")
    assert result.exit_code == 0 and "mutually exclusive" not in result.stderr
    assert json.loads((tmp_path / "c" / "manifest.json").read_text())["decision"]["exclusive"] == []
    (tmp_path / "m.yml").write_text("labels: [bug, enhancement, question]\nexclusive:\n  - [bug, feature]\n")
    result = run("train", tmp_path / "one.csv", *common, "--label-map", tmp_path / "m.yml", "-o", tmp_path / "d")
    assert result.exit_code == 2 and "not in the label set" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["train", "missing.jsonl", "-o", "x"], "file not found: missing.jsonl"),
    (["evaluate", "no-bundle", "missing.jsonl"], "no model bundle at no-bundle"),
    (["train", EXAMPLES / "issues.jsonl", "-p", "oops"], "KEY=VALUE"),
    (["train", EXAMPLES / "issues.jsonl", "-s", "magic"], "unknown strategy 'magic'"),
    (["train", EXAMPLES / "issues.jsonl", "-s", "naive_bayes", "-p", "alhpa=0.5"], "naive_bayes: unknown parameter 'alhpa' (did you mean 'alpha'?)"),
    (["train", EXAMPLES / "issues.jsonl", "--objective", "recall"], "unknown objective 'recall'"),
    (["train", EXAMPLES / "issues.jsonl", "--objective", "precision=2"], "0 < P <= 1"),
    (["train", EXAMPLES / "issues.jsonl", "-s", "linear", "--budget", "60"], "--budget is for --strategy auto"),
    (["train", EXAMPLES / "issues.jsonl", "-p", 'candidates=[["magic", {}]]'], "unknown strategy 'magic'"),
    (["train", EXAMPLES / "issues.jsonl", "--exclusive", "sometimes"], "--exclusive takes auto or none"),
    (["train", EXAMPLES / "issues.jsonl", "-s", "knn", "-p", "kk=3"], "knn: unknown parameter 'kk'"),
    (["train", EXAMPLES / "issues.jsonl", "-s", "knn", "-p", "k=many"], "knn: parameter 'k'"),
    (["train", EXAMPLES / "issues.jsonl", "--decision", "sometimes"], "unknown decision rule 'sometimes'"),
])
def test_bad_input_one_line_exit_2(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1  # no "training ..." line: nothing was trained
    assert not any(tmp_path.iterdir())


def test_strategies_verbose_lists_parameters():
    result = run("strategies")
    assert result.exit_code == 0 and result.stdout.split() == sorted(result.stdout.split())
    result = run("strategies", "--verbose")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    alpha = next(line for line in lines if line.strip().startswith("alpha "))
    assert "float >= 0" in alpha and "1.0" in alpha and "smoothing" in alpha
    assert any(line.strip().startswith("k ") and "int > 0 | None" in line for line in lines)
    assert any(line.startswith("knn: ") for line in lines)


def test_label_map_matching_nothing(tmp_path):
    (tmp_path / "m.yml").write_text("labels:\n  nothing-like-this: x\n")
    result = run("train", EXAMPLES / "issues.jsonl", "--label-map", tmp_path / "m.yml", "-o", tmp_path / "b")
    assert result.exit_code == 2 and "matches no label" in result.stderr


def test_unlabelled_data_and_bad_json_line(tmp_path):
    (tmp_path / "u.jsonl").write_text('{"title": "a", "labels": []}\n')
    result = run("train", tmp_path / "u.jsonl", "-o", tmp_path / "b")
    assert result.exit_code == 2 and "no issue carries a label" in result.stderr
    (tmp_path / "bad.jsonl").write_text('{"title": "a", "labels": ["bug"]}\n{oops\n')
    result = run("train", tmp_path / "bad.jsonl", "-o", tmp_path / "b")
    assert result.exit_code == 2 and "line 2" in result.stderr


def test_corrupt_bundle(trained, tmp_path):
    import shutil

    shutil.copytree(trained / "bundle", tmp_path / "b")
    (tmp_path / "b" / "manifest.json").write_text("{")
    result = run("predict", tmp_path / "b", "--title", "x")
    assert result.exit_code == 2 and "corrupt bundle" in result.stderr


def test_demo(tmp_path):
    result = run("demo", "-o", tmp_path / "demo")
    assert result.exit_code == 0, result.output
    assert "test micro F1" in result.output and (tmp_path / "demo" / "bundle" / "manifest.json").is_file()


def test_knn_bundle_explains_with_similar_issues(trained, tiny_bert, tmp_path):
    result = run("train", trained / "split", "-s", "knn", "-p", f"model={json.dumps(str(tiny_bert))}", "-o", tmp_path / "knn")
    assert result.exit_code == 0, result.output
    result = run("predict", tmp_path / "knn", "--title", "Crash with traceback", "--explain", "--json")
    assert result.exit_code == 0, result.output
    neighbours = json.loads(result.stdout)["explain"]["neighbours"]
    train_titles = {json.loads(line)["title"] for line in (trained / "split" / "train.jsonl").read_text().splitlines()}
    assert neighbours and all(n["title"] in train_titles and isinstance(n["number"], int) for n in neighbours)
