"""experiments/lifecycle.py on a tiny made-up repository: months replayed, retrains gated,
applied/suggested precision counted, the report and plot written, a re-run resumes."""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import pytest

from tests.conftest import LABEL_SETS, TEXTS
from tests.experiments.conftest import load_script



@pytest.fixture(scope="module")
def lifecycle():
    return load_script("lifecycle")


def _args(tmp_path: Path, **over) -> argparse.Namespace:
    values = dict(data_dir=str(tmp_path / "data"), label_map="experiments/labels/hf-datasets.yml", start="2021-01",
                  months=3, strategy="naive_bayes", budget=None, objective="micro", holdout="20%", margin=0.0,
                  precision=0.5, out=str(tmp_path / "out" / "lifecycle.jsonl"), work=str(tmp_path / "work"),
                  fresh=False, report=False)
    return argparse.Namespace(**{**values, **over})


def test_a_replayed_quarter(lifecycle, tmp_path):
    rows = []
    for month in (1, 2, 3):
        for i, (text, labels) in enumerate(zip(TEXTS * 2, LABEL_SETS * 2)):
            title, body = text.split("\n\n", 1)
            rows.append({"number": len(rows) + 1, "title": f"{title} ({month}.{i})", "body": body,
                         "labels": [{"name": l} for l in labels], "created_at": f"2021-0{month}-{i + 1:02d}T00:00:00Z",
                         "updated_at": f"2021-0{month}-{i + 1:02d}T00:00:00Z", "pull_request": None})
    (tmp_path / "data").mkdir()
    with gzip.open(tmp_path / "data" / "hf-datasets-issues.jsonl.gz", "wt") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    args = _args(tmp_path)
    lifecycle.simulate(args)
    out = [json.loads(l) for l in Path(args.out).read_text().splitlines()]
    assert [r["month"] for r in out] == ["2021-01", "2021-02", "2021-03"]
    assert out[0]["model"] == "zero-shot fallback" and out[0]["retrain"] == "promoted"
    assert out[1]["model"].startswith("version 1") and out[0]["labelled_so_far"] == 24
    for r in out:
        assert r["scored_issues"] == 24 and r["retrain"] in ("promoted", "staged")
        for key in ("applied", "suggested", "applied_or_suggested"):
            assert r[key]["tp"] <= r[key]["n"]
    lifecycle.simulate(args)  # resumes: every month is done, nothing is added
    assert len(Path(args.out).read_text().splitlines()) == 3
    Path(args.out).with_suffix(".command").write_text(json.dumps({"command": "python experiments/lifecycle.py",
                                                                  "precision": 0.5}))
    lifecycle.report(args)
    text = Path(args.out).with_suffix(".md").read_text()
    assert "| 2021-02 | 48 | version 1 (naive_bayes) | 24 |" in text
    assert Path(args.out).with_suffix(".png").stat().st_size > 0
