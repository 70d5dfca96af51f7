"""``retrain`` on small hand-written JSONL, end to end: the first model is promoted, a worse
candidate is kept as staged (exit 3), a better one promoted (exit 0); the time-ordered
holdout never holds an issue older than a training issue; corrections merge (a human's later
label wins); the report and the GitHub job summary; bad input exits 2."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labeler.bundle import Bundle
from labeler.cli import app
from labeler.data import Issue
from labeler.errors import DataError, ParameterError
from labeler.registry import Registry
from labeler.retrain import (KEPT, PROMOTED, RetrainSettings, gate, merge_corrections, newest_slice,
                             read_corrections, time_ordered_split)

REPO = "acme/widgets"
WORDS = {
    "bug": ["crash", "traceback", "segfault", "exception", "broken", "error"],
    "enhancement": ["feature", "support", "proposal", "please", "would", "nice"],
    "documentation": ["docs", "typo", "readme", "tutorial", "guide", "link"],
}
#: a history where people mislabelled everything the same wrong way
SWAP = {"bug": "enhancement", "enhancement": "documentation", "documentation": "bug"}
START = datetime(2025, 1, 1, tzinfo=timezone.utc)
runner = CliRunner()


@pytest.fixture(autouse=True)
def no_job_summary(monkeypatch):
    """Tests that run inside GitHub Actions must not write to the real job summary."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def make_issues(n: int = 60, *, swap_older_than: int = 0, seed: int = 0) -> list[dict]:
    """``n`` REST-like issues, one a day, labels in turn; the first ``swap_older_than`` carry
    the wrong label (:data:`SWAP`)."""
    rng = random.Random(seed)
    labels = list(WORDS)
    out = []
    for i in range(n):
        label = labels[i % 3]
        words = rng.sample(WORDS[label], 3)
        created = START + timedelta(days=i)
        shown = SWAP[label] if i < swap_older_than else label
        out.append({"number": i + 1, "title": f"{words[0]} {words[1]} in module {i}",
                    "body": f"{words[2]} {rng.choice(WORDS[label])} when running step {i}",
                    "labels": [{"name": shown}], "created_at": _iso(created),
                    "updated_at": _iso(created + timedelta(hours=1))})
    return out


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def retrain(data: Path, registry: Path, *extra, env=None):
    return run("retrain", data, "--registry", registry, "--repo", REPO, "--strategy", "naive_bayes",
               "--min-support", 3, *extra, env=env)


def test_first_model_promoted_then_worse_kept_staged(tmp_path):
    reg_dir = tmp_path / "registry"
    good = write(tmp_path / "good.jsonl", make_issues())
    result = retrain(good, reg_dir)
    assert result.exit_code == PROMOTED, result.output
    assert "no active model: the first version is promoted" in result.stderr
    reg = Registry(reg_dir)
    assert reg.pointers(REPO) == {"active": 1, "staged": None, "backup": None}
    assert reg.get(REPO, 1).info["metrics"]["holdout"] == 12  # 20% of 60, recorded with the version

    bad = write(tmp_path / "bad.jsonl", make_issues(swap_older_than=48))  # training part mislabelled
    result = retrain(bad, reg_dir)
    assert result.exit_code == KEPT, result.output
    assert "kept as staged" in result.stdout
    assert reg.pointers(REPO) == {"active": 1, "staged": 2, "backup": None}
    report = json.loads(next((reg_dir / REPO / "reports").glob("retrain-*-v0002.json")).read_text())
    assert report["outcome"] == "staged" and report["exit_code"] == KEPT
    assert report["active"]["version"] == 1 and report["candidate"]["version"] == 2
    assert any("below the margin" in r for r in report["reasons"])
    assert any("precision of" in r for r in report["reasons"])
    assert report["data"]["sizes"] == {"labelled": 60, "unlabelled": 0, "train": 38, "valid": 10, "holdout": 12}
    assert report["data"]["train_until"] < report["data"]["holdout_from"] == "2025-02-18T00:00:00Z"
    assert set(report["seconds"]) == {"prepare", "train", "evaluate", "register", "total"}
    row = report["per_label"][0]
    assert row["delta"]["f1"] == pytest.approx(row["candidate"]["f1"] - row["active"]["f1"])
    md = next((reg_dir / REPO / "reports").glob("retrain-*-v0002.md")).read_text()
    assert "kept as staged" in md and "| label | support |" in md


def test_better_candidate_promoted_and_step_summary_appended(tmp_path):
    reg_dir = tmp_path / "registry"
    reg = Registry(reg_dir)
    mislabelled = make_issues(swap_older_than=60)
    bad = Bundle.train("naive_bayes", [f"{r['title']}\n\n{r['body']}" for r in mislabelled],
                       [[r["labels"][0]["name"]] for r in mislabelled], labels=list(WORDS))
    reg.promote(REPO, reg.add(REPO, bad).number)
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    good = write(tmp_path / "good.jsonl", make_issues())
    result = retrain(good, reg_dir, "--report", tmp_path / "reports", "--margin", 0.1,
                     env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.exit_code == PROMOTED, result.output
    assert reg.pointers(REPO) == {"active": 2, "staged": None, "backup": 1}
    text = summary.read_text()
    assert text.startswith("earlier step\n") and "## issue-labeler retrain: acme/widgets" in text
    assert "Candidate version 2 (naive_bayes) promoted" in text
    assert len(list((tmp_path / "reports").glob("retrain-*-v0002.*"))) == 2
    for step in ("reading", "training naive_bayes", "evaluating the candidate and active version 1"):
        assert step in result.stderr


def test_time_ordered_holdout_never_older_than_training():
    rows = make_issues(50)
    random.Random(3).shuffle(rows)  # file order must not matter
    issues = [Issue(title=r["title"], labels=["bug"], number=r["number"], created_at=r["created_at"]) for r in rows]
    for holdout in ("1", "7", "20%", "48"):
        older, newest = time_ordered_split(issues, holdout)
        assert len(older) + len(newest) == 50
        assert max(i.created_at for i in older) <= min(i.created_at for i in newest)
        fit, valid = newest_slice(older)
        if valid:
            assert max(i.created_at for i in fit) <= min(i.created_at for i in valid)
    assert len(time_ordered_split(issues, "20%")[1]) == 10
    with pytest.raises(DataError, match="too few"):
        time_ordered_split(issues, "99%")
    with pytest.raises(DataError, match="no created_at"):
        time_ordered_split(issues + [Issue(title="x", labels=["bug"], number=99)], "10")


def test_corrections_later_human_label_wins(tmp_path):
    issues = [Issue(title="a", labels=["bug"], number=1, raw={"updated_at": "2025-01-02T00:00:00Z"}),
              Issue(title="b", labels=["bug"], number=2, raw={"updated_at": "2025-03-01T00:00:00Z"}),
              Issue(title="c", labels=["bug"], number=3, raw={})]
    rows = [{"repo": REPO, "number": 1, "labels": ["question"], "corrected_at": "2025-01-01T00:00:00Z"},
            {"repo": REPO, "number": 1, "labels": ["enhancement"], "corrected_at": "2025-02-01T00:00:00Z"},
            {"repo": REPO, "number": 2, "labels": ["documentation"], "corrected_at": "2025-02-01T00:00:00Z"},
            {"repo": REPO, "number": 3, "labels": [], "corrected_at": "2025-02-01T00:00:00Z"},
            {"repo": REPO, "number": 7, "title": "new", "body": "", "labels": ["bug"], "corrected_at": None},
            {"repo": "other/repo", "number": 1, "labels": ["wontfix"], "corrected_at": "2030-01-01T00:00:00Z"}]
    found, other = read_corrections([write(tmp_path / "c.jsonl", rows)], REPO)
    assert other == 1 and found[1].labels == ["enhancement"]  # the later of two corrections
    merged, only, counts = merge_corrections(issues, found)
    assert [i.labels for i in merged] == [["enhancement"], ["bug"], []]  # #2's copy is newer than its correction
    assert [(i.number, i.labels, i.created_at) for i in only] == [(7, ["bug"], None)]
    assert counts == {"applied": 2, "older_than_data": 1, "not_in_data": 1}


def test_corrections_change_what_the_candidate_learns(tmp_path):
    rows = make_issues(30)
    data = write(tmp_path / "d.jsonl", rows)
    fixes = write(tmp_path / "fix.jsonl", [{"repo": REPO, "number": r["number"], "labels": ["question"],
                                            "corrected_at": "2030-01-01T00:00:00Z"} for r in rows[:3]])
    result = retrain(data, tmp_path / "reg", "--corrections", fixes)
    assert result.exit_code == PROMOTED, result.output
    report = json.loads(next((tmp_path / "reg" / REPO / "reports").glob("*.json")).read_text())
    assert "question" in report["data"]["labels"]
    assert report["data"]["corrections"] == {"applied": 3, "older_than_data": 0, "not_in_data": 0, "other_repos": 0}


def test_gate_precision_drop_and_margin():
    def metrics(micro, precision, support=20):
        return {"micro_f1": micro, "macro_f1": micro,
                "per_label": {"bug": {"precision": precision, "recall": 1.0, "f1": micro, "support": support}}}

    settings = RetrainSettings.parse(margin=0.01, max_precision_drop=0.05, min_support=10)
    assert gate(metrics(0.80, 0.90), metrics(0.78, 0.90), settings).promote
    assert not gate(metrics(0.785, 0.90), metrics(0.78, 0.90), settings).promote  # +0.005 < margin
    # 200 of 250 predictions right against 0.90: a real drop, even its upper bound is far below
    verdict = gate(metrics(0.90, 0.80, support=200), metrics(0.78, 0.90, support=200), settings)
    assert not verdict.promote and "precision of 'bug' drops 0.100" in verdict.reasons[0]
    assert "upper bound 0.83" in verdict.reasons[0]
    # 20 of 25 right against 0.90: the same observed drop, but within sampling noise
    verdict = gate(metrics(0.90, 0.80, support=20), metrics(0.78, 0.90, support=20), settings)
    assert verdict.promote and "within sampling noise" in verdict.reasons[1]
    assert gate(metrics(0.90, 0.60, support=5), metrics(0.78, 0.90, support=5), settings).promote  # not gated
    assert gate(metrics(0.10, 0.10), None, settings).promote


@pytest.mark.parametrize("args, message", [
    (["--holdout", "abc"], "--holdout"),
    (["--objective", "best"], "--objective"),
    (["--strategy", "nope"], "unknown strategy"),
    (["--budget", "5"], "--budget is for --strategy auto"),
    (["--max-precision-drop", "2"], "--max-precision-drop"),
])
def test_bad_options_exit_2(tmp_path, args, message):
    data = write(tmp_path / "d.jsonl", make_issues(20))
    result = run("retrain", data, "--registry", tmp_path / "reg", "--repo", REPO, "--strategy", "naive_bayes", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "reg").exists()  # nothing trained or stored


def test_bad_input_exit_2(tmp_path):
    data = write(tmp_path / "d.jsonl", make_issues(20))
    assert "needs --repo" in run("retrain", data, "--registry", tmp_path / "r").stderr
    assert run("retrain", tmp_path / "missing.jsonl", "--registry", tmp_path / "r", "--repo", REPO).exit_code == 2
    result = run("retrain", data, "--registry", tmp_path / "r", "--repo", REPO, "--label-map", tmp_path / "no.yml")
    assert result.exit_code == 2 and "label map not found" in result.stderr
    undated = write(tmp_path / "u.jsonl", [{**r, "created_at": None} for r in make_issues(20)])
    result = run("retrain", undated, "--registry", tmp_path / "r", "--repo", REPO, "--strategy", "naive_bayes")
    assert result.exit_code == 2 and "no created_at" in result.stderr


def test_training_failure_exits_1(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(Bundle, "train", broken)
    data = write(tmp_path / "d.jsonl", make_issues(20))
    result = retrain(data, tmp_path / "reg")
    assert result.exit_code == 1
    assert "retrain failed: RuntimeError: out of memory" in result.stderr


def test_settings_reject_unknown_forms():
    with pytest.raises(ParameterError, match="--holdout"):
        RetrainSettings.parse(holdout="0.2")
    assert RetrainSettings.parse(strategy="auto", budget=30).params() == {"objective": "micro", "budget": 30.0}


def test_candidate_rule_is_tuned_on_the_newest_issues_only(tmp_path):
    """linear could add its older training issues' out-of-fold scores to the tuning data (as
    ``train`` does); retrain tunes on the newest part alone, whose labels have not drifted."""
    result = run("retrain", write(tmp_path / "good.jsonl", make_issues()), "--registry", tmp_path / "registry",
                 "--repo", REPO, "--strategy", "linear", "--min-support", 3)
    assert result.exit_code == PROMOTED, result.output
    manifest = Registry(tmp_path / "registry").get(REPO, 1).load().manifest
    assert "decision_tuned_on" not in manifest and manifest["validation"]["n"] == 10
