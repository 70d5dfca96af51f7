"""A maintainer's own data end to end (issue #14): split with --where/--valid/--test/--test-from
keeping every input column, bundles that remember how their data was read and their label
map, predict's decisions and evaluate --by/--errors, on small hand-written CSV and JSONL."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from skmultilearn.model_selection import iterative_train_test_split
from typer.testing import CliRunner

from labeler.bundle import Bundle
from labeler.cli import app
from labeler.splits import split_indices

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[2] / "labeler" / "examples"

BUG = ["Crash on startup", "Traceback when saving", "Segfault in parser", "Error opening file",
       "Crash after upgrade", "Exception in export", "Broken build crash", "Crash with empty input"]
FEATURE = ["Add dark mode", "Support export to SVG", "Add a quiet flag", "Support plugins",
           "Add keyboard shortcuts", "Support OAuth login", "Add streaming mode", "Add retry option"]
DOCS = ["Typo in the docs", "Docs: broken link", "Improve docs of load", "Docs tutorial outdated",
        "Document the config", "Docs missing FAQ", "Docs examples wrong", "Clarify docs license"]
REPOS = ["octo/alpha", "octo/beta"]
# raw labels as public data sets ship them; the label map turns them into bug/feature/docs
RAW = {"bug": "type: bug", "feature": "type: feature", "docs": "type: docs"}


def rows():
    out = []
    for kind, titles in (("bug", BUG), ("feature", FEATURE), ("docs", DOCS)):
        body = {"bug": "traceback error crash stack", "feature": "please add support feature request",
                "docs": "documentation page typo docs"}[kind]
        for i, title in enumerate(titles):
            out.append({"repo": REPOS[i % 2], "issue_title": title, "issue_body": f"{body} {i}",
                        "issue_label": RAW[kind], "stars": str(10 * i)})
    return out


def write_csv(path: Path, records, header=None) -> Path:
    header = header or list(records[0])
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        writer.writerows(records)
    return path


def read_csv(path: Path):
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return reader.fieldnames, list(reader)


def run(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


COLS = ["--title-column", "issue_title", "--body-column", "issue_body", "--label-column", "issue_label"]


@pytest.fixture()
def label_map(tmp_path):
    path = tmp_path / "labels.yml"
    path.write_text("name: mine\nlabels:\n  'type: bug': bug\n  'type: feature': feature\n  'type: docs': docs\n")
    return path


@pytest.fixture(scope="module")
def renamed(tmp_path_factory):
    """A CSV whose columns are all renamed, trained once with flags and a label map."""
    tmp = tmp_path_factory.mktemp("renamed")
    write_csv(tmp / "issues.csv", rows())
    (tmp / "labels.yml").write_text("labels:\n  'type: bug': bug\n  'type: feature': feature\n  'type: docs': docs\n")
    result = run("train", tmp / "issues.csv", *COLS, "--label-map", tmp / "labels.yml", "-s", "naive_bayes",
                 "--valid", tmp / "issues.csv", "-o", tmp / "bundle")
    assert result.exit_code == 0, result.output
    return tmp


# -- split ------------------------------------------------------------------------------------
def _old_split_indices(y, seed):
    """split_indices as it was before valid/test sizes (the benchmark's splits)."""
    rng = np.random.RandomState(seed)
    order = rng.permutation(y.shape[0])
    np.random.seed(seed)

    def cut(indices, yy, size):
        x_rest, _, x_taken, _ = iterative_train_test_split(indices.reshape(-1, 1), yy, test_size=size)
        return x_rest.ravel(), x_taken.ravel()

    rest, train = cut(order, y[order], 0.5)
    valid, test = cut(rest, y[rest], 0.5)
    return {"train": np.sort(train), "valid": np.sort(valid), "test": np.sort(test)}


def test_split_indices_defaults_are_unchanged_and_sizes_are_choosable():
    y = (np.random.RandomState(3).rand(120, 4) < 0.3).astype(int)
    for seed in range(3):
        new, old = split_indices(y, seed=seed), _old_split_indices(y, seed)
        assert all(np.array_equal(new[k], old[k]) for k in old)
    parts = split_indices(y, seed=0, valid=0.1, test=0.3)
    assert abs(len(parts["valid"]) - 12) <= 3 and abs(len(parts["test"]) - 36) <= 3
    for valid, test in [(13, 31), (7, 1), (40, 40)]:  # counts are exact
        parts = split_indices(y, seed=1, valid=valid, test=test)
        assert [len(parts[k]) for k in ("valid", "test")] == [valid, test]
        assert sorted(np.concatenate(list(parts.values()))) == list(range(120))
        again = split_indices(y, seed=1, valid=valid, test=test)
        assert all(np.array_equal(parts[k], again[k]) for k in parts)
    parts = split_indices(y, seed=0, valid=20, test=0)
    assert len(parts["test"]) == 0 and len(parts["valid"]) == 20
    with pytest.raises(ValueError, match="no training"):
        split_indices(y, valid=60, test=60)


def test_split_where_keeps_one_repo_and_every_column(tmp_path, label_map):
    src = write_csv(tmp_path / "issues.csv", rows())
    result = run("split", src, *COLS, "--label-map", label_map, "--where", "repo=octo/alpha",
                 "--valid", "3", "--test", "0.25", "-o", tmp_path / "split")
    assert result.exit_code == 0, result.output
    assert "valid 3," in result.stdout  # a count is exact
    assert "12 not matching --where" in result.stdout
    header, original = read_csv(src)
    written = []
    for name in ("train", "valid", "test"):
        cols, part = read_csv(tmp_path / "split" / f"{name}.csv")
        assert cols == header  # the same header, every column carried through
        written += part
    assert len(written) == 12 and all(r["repo"] == "octo/alpha" for r in written)
    # rows are the input's rows unchanged (raw label names, extra columns)
    assert sorted(map(tuple, (r.values() for r in written))) == \
        sorted(tuple(r.values()) for r in original if r["repo"] == "octo/alpha")
    summary = json.loads((tmp_path / "split" / "split.json").read_text())
    assert summary["files"]["train"] == "train.csv" and summary["input"]["title_column"] == "issue_title"
    assert summary["label_map"]["labels"]["type: bug"] == "bug"
    # the directory trains with no flags at all: split.json says how to read it
    result = run("train", tmp_path / "split", "-s", "naive_bayes", "-o", tmp_path / "bundle")
    assert result.exit_code == 0, result.output
    assert "using split.json's input options" in result.stderr
    assert Bundle.load(tmp_path / "bundle").labels == ["bug", "feature", "docs"]


def test_split_jsonl_keeps_the_original_objects(tmp_path):
    records = [{"number": i, "title": r["issue_title"], "body": r["issue_body"],
                "labels": [{"name": r["issue_label"], "color": "fff"}], "repo": r["repo"],
                "user": {"login": f"u{i}"}} for i, r in enumerate(rows())]
    src = tmp_path / "issues.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = run("split", src, "--where", "repo=octo/beta", "--where", "repo=octo/alpha", "-o", tmp_path / "s")
    assert result.exit_code == 0, result.output
    back = [json.loads(line) for name in ("train", "valid", "test")
            for line in (tmp_path / "s" / f"{name}.jsonl").read_text().splitlines()]
    assert sorted(back, key=lambda r: r["number"]) == records


def test_split_test_from_uses_that_file_and_splits_the_rest(tmp_path, label_map):
    all_rows = rows()
    official = [r for i, r in enumerate(all_rows) if i % 4 == 0]
    src = write_csv(tmp_path / "issues.csv", all_rows)  # the official test rows are in it too
    test_file = write_csv(tmp_path / "official-test.csv", official)
    result = run("split", src, *COLS, "--label-map", label_map, "--test-from", test_file,
                 "--valid", "0.2", "-o", tmp_path / "split")
    assert result.exit_code == 0, result.output
    assert f"{len(official)} issue(s) of" in result.stdout  # left out of train and valid
    _, test = read_csv(tmp_path / "split" / "test.csv")
    assert test == official
    _, train = read_csv(tmp_path / "split" / "train.csv")
    _, valid = read_csv(tmp_path / "split" / "valid.csv")
    titles = {r["issue_title"] for r in official}
    assert not titles & {r["issue_title"] for r in train + valid}
    assert len(train) + len(valid) == len(all_rows) - len(official)


@pytest.mark.parametrize("args, message", [
    (["--valid", "half"], "--valid takes a fraction"),
    (["--test", "2.5"], "--test takes a fraction below 1 or a whole count"),
    (["--where", "repo"], "--where takes COLUMN=VALUE"),
    (["--where", "org=octo"], "no record has a column 'org'"),
    (["--valid", "20", "--test", "20"], "leave no training issues"),
])
def test_split_bad_options_one_line_exit_2(tmp_path, args, message):
    src = write_csv(tmp_path / "issues.csv", rows())
    result = run("split", src, *COLS, *args, "-o", tmp_path / "split")
    assert result.exit_code == 2, result.output
    assert message in result.stderr and result.stderr.count("\n") == 1


# -- bundles remember their input -------------------------------------------------------------
def test_renamed_columns_trained_once_then_evaluated_and_predicted_without_flags(renamed):
    manifest = json.loads((renamed / "bundle" / "manifest.json").read_text())
    assert manifest["input"]["title_column"] == "issue_title" and manifest["input"]["format"] == "csv"
    assert manifest["label_map"]["labels"] == {"type: bug": "bug", "type: feature": "feature", "type: docs": "docs"}
    result = run("evaluate", renamed / "bundle", renamed / "issues.csv", "--json")
    assert result.exit_code == 0, result.output
    assert "using the bundle's input options: --title-column issue_title" in result.stderr
    assert "using the bundle's label map" in result.stderr
    assert json.loads(result.stdout)["n"] == 24  # raw 'type: bug' labels mapped by the recorded map
    result = run("predict", renamed / "bundle", renamed / "issues.csv", "--json")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 24
    # a flag overrides what the bundle recorded
    result = run("evaluate", renamed / "bundle", renamed / "issues.csv", "--title-column", "nope")
    assert result.exit_code == 2 and "no column 'nope'" in result.stderr


def test_jsonl_bundle_reads_stdin_csv_and_jsonl(tmp_path):
    src = tmp_path / "issues.jsonl"
    src.write_text("".join(json.dumps({"t": r["issue_title"], "b": r["issue_body"], "kind": r["issue_label"]}) + "\n"
                           for r in rows()))
    result = run("train", src, "--title-column", "t", "--body-column", "b", "--label-column", "kind",
                 "-s", "naive_bayes", "-o", tmp_path / "bundle")
    assert result.exit_code == 0, result.output
    lines = '{"t": "Crash on exit", "b": "traceback error"}\n{"t": "Typo in docs", "b": "docs page"}\n'
    result = run("predict", tmp_path / "bundle", "--json", input=lines)
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["row"] for o in out] == [1, 2] and out[0]["labels"][0]["label"] == "type: bug"
    result = run("predict", tmp_path / "bundle", "-", "--json", input="t,b\nCrash on exit,traceback error\n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["labels"][0]["label"] == "type: bug"


# -- predict ----------------------------------------------------------------------------------
def test_predict_json_every_label_with_its_decision(renamed):
    bundle = Bundle.load(renamed / "bundle")
    text = "Crash on exit\n\ntraceback error crash"
    result = run("predict", renamed / "bundle", "--title", "Crash on exit", "--body", "traceback error crash", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    calls = bundle.classify([text])[0]
    assert [(c["label"], c["decision"]) for c in record["labels"]] == [(c.label, c.decision) for c in calls]
    assert [c["score"] for c in record["labels"]] == [round(c.score, 4) for c in calls]
    assert {c["label"] for c in record["labels"]} == {"bug", "feature", "docs"}
    assert record["apply"] == [c.label for c in calls if c.decision == "apply"] and record["apply"][0] == "bug"
    assert record["bundle"]["name"] == "bundle" and record["bundle"]["version"] == bundle.version
    assert bundle.version.endswith("/" + bundle.manifest["training"]["sha256"][:8])
    result = run("predict", renamed / "bundle", "--title", "Crash on exit", "--json", "--top-k", "2")
    assert len(json.loads(result.stdout)["labels"]) == 2


def test_predict_table_all_scores_and_top_k(renamed):
    stdin = "issue_title,issue_body\nCrash on exit,traceback error crash\nAdd dark mode,please add support\n"
    result = run("predict", renamed / "bundle", input=stdin)
    assert result.exit_code == 0, result.output
    first = result.stdout.splitlines()[0]
    assert first.startswith("row 1: bug (") and "below" not in first
    result = run("predict", renamed / "bundle", "--all-scores", input=stdin)
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all(line.count("(") == 3 for line in lines) and "below" in result.stdout
    result = run("predict", renamed / "bundle", "--top-k", "1", input=stdin)
    assert [line.count("(") for line in result.stdout.splitlines()] == [1, 1]


# -- evaluate ---------------------------------------------------------------------------------
def test_evaluate_by_repo_and_errors(renamed, tmp_path):
    result = run("evaluate", renamed / "bundle", renamed / "issues.csv", "--by", "repo", "--json",
                 "--errors", tmp_path / "errors.jsonl")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    by = data["by"]
    assert by["column"] == "repo" and set(by["values"]) == set(REPOS)
    assert sum(v["n"] for v in by["values"].values()) == data["n"]
    assert all({"micro_f1", "macro_f1", "per_label"} <= set(v) for v in by["values"].values())
    errors = [json.loads(line) for line in (tmp_path / "errors.jsonl").read_text().splitlines()]
    for e in errors:
        assert set(e["labels"]) != set(e["predicted"]) and set(e["scores"]) == {"bug", "feature", "docs"}
        assert e["repo"] in REPOS and e["row"] >= 1
    assert f"wrote {len(errors)} misclassified" in result.stderr
    result = run("evaluate", renamed / "bundle", renamed / "issues.csv", "--by", "repo",
                 "--errors", tmp_path / "errors.csv")
    assert result.exit_code == 0, result.output
    assert "repo" in result.stdout and "octo/alpha" in result.stdout and "(all)" in result.stdout
    header, written = read_csv(tmp_path / "errors.csv")
    assert len(written) == len(errors)
    result = run("evaluate", renamed / "bundle", renamed / "issues.csv", "--by", "org")
    assert result.exit_code == 2 and "no column 'org'" in result.stderr


def test_evaluate_errors_list_a_misclassified_issue(renamed, tmp_path):
    wrong = [{"repo": "octo/alpha", "issue_title": "Crash on startup", "issue_body": "traceback error crash",
              "issue_label": "type: docs", "stars": "1"},
             {"repo": "octo/beta", "issue_title": "Add dark mode", "issue_body": "please add support feature",
              "issue_label": "type: feature", "stars": "2"}]
    src = write_csv(tmp_path / "wrong.csv", wrong)
    result = run("evaluate", renamed / "bundle", src, "--errors", tmp_path / "e.jsonl")
    assert result.exit_code == 0, result.output
    errors = [json.loads(line) for line in (tmp_path / "e.jsonl").read_text().splitlines()]
    assert [e["row"] for e in errors] == [1]
    assert errors[0]["missing"] == ["docs"] and "bug" in errors[0]["extra"]
    assert list(errors[0]["scores"])[0] == "bug"  # best first


def test_shipped_example_csv_end_to_end(tmp_path):
    """The README's path on labeler/examples/issues.csv."""
    cols = ["--title-column", "issue_title", "--body-column", "issue_body", "--label-column", "issue_label"]
    result = run("split", EXAMPLES / "issues.csv", *cols, "--valid", "0.2", "--test", "0.2", "-o", tmp_path / "split")
    assert result.exit_code == 0, result.output
    header, _ = read_csv(EXAMPLES / "issues.csv")
    assert header == ["repo", "issue_title", "issue_body", "issue_label"]
    assert read_csv(tmp_path / "split" / "test.csv")[0] == header
    result = run("train", tmp_path / "split", "-s", "naive_bayes", "-o", tmp_path / "bundle")
    assert result.exit_code == 0, result.output
    result = run("evaluate", tmp_path / "bundle", tmp_path / "split" / "test.csv", "--by", "repo")
    assert result.exit_code == 0, result.output
    assert "acme/" in result.stdout
    result = run("predict", tmp_path / "bundle", tmp_path / "split" / "test.csv", "--json")
    assert result.exit_code == 0 and all(json.loads(l)["bundle"]["name"] == "bundle" for l in result.stdout.splitlines())
