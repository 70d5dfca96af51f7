"""labeler.pipeline: from a data file to labelled texts (prepare) and a written split."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pytest

from labeler.data import load_issues
from labeler.errors import DataError
from labeler.labelmap import LabelMap
from labeler.pipeline import Prepared, prepare, write_split

EXAMPLES = Path(__file__).resolve().parents[2] / "labeler" / "examples"


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_prepare_with_a_label_map_file():
    prepared = prepare(EXAMPLES / "issues.jsonl", EXAMPLES / "labels.yml")
    assert isinstance(prepared, Prepared)
    assert prepared.labels == ["bug", "enhancement", "documentation", "question"]
    assert prepared.label_map.name == "example"
    assert len(prepared.labelled) + len(prepared.unlabelled) == len(prepared.load.issues)
    assert prepared.texts() == [i.text for i in prepared.labelled]
    y = prepared.y()
    assert y.shape == (len(prepared.labelled), 4) and (y.sum(axis=1) >= 1).all()
    for row, labels in zip(y, prepared.label_sets()):
        assert {prepared.labels[j] for j in np.flatnonzero(row)} == set(labels)


def test_prepare_maps_labels_and_splits_off_the_unlabelled(tmp_path):
    path = write(tmp_path / "i.jsonl", [
        {"title": "crash", "labels": ["type: bug", "good first issue"]},
        {"title": "docs", "labels": ["docs"]},
        {"title": "question", "labels": ["wontfix"]},
        {"title": "nothing", "labels": []},
    ])
    label_map = LabelMap({"type: bug": "bug", "docs": "documentation"})
    prepared = prepare(path, label_map)
    assert prepared.label_sets() == [["bug"], ["documentation"]]
    assert [i.title for i in prepared.unlabelled] == ["question", "nothing"]


def test_prepare_without_a_map_uses_every_label(tmp_path):
    path = write(tmp_path / "i.jsonl", [{"title": "a", "labels": ["bug"]}, {"title": "b", "labels": ["docs", "bug"]},
                                        {"title": "c", "labels": []}])
    prepared = prepare(path)
    assert prepared.labels == ["bug", "docs"] and len(prepared.labelled) == 2 and len(prepared.unlabelled) == 1


@pytest.mark.parametrize("rows, label_map, message", [
    ([], None, "holds no issues"),
    ([{"title": "a", "labels": []}], None, "no issue carries a label"),
    ([{"title": "a", "labels": ["x"]}], LabelMap({"bug": "bug"}), "matches no label"),
])
def test_prepare_errors(tmp_path, rows, label_map, message):
    path = write(tmp_path / "i.jsonl", rows)
    with pytest.raises(DataError, match=message):
        prepare(path, label_map)


def test_prepare_has_no_dead_options():
    assert list(inspect.signature(prepare).parameters) == ["path", "label_map", "opts", "require_every_label"]


def test_every_label_is_required_only_of_data_to_train_on(tmp_path):
    """Validation, test and new issues may lack a label of the map; training data may not."""
    from labeler.errors import DataError

    (tmp_path / "d.jsonl").write_text("".join(f'{{"title": "t{i}", "labels": ["bug"]}}\n' for i in range(4)))
    (tmp_path / "m.yml").write_text("labels: [bug, docs]\n")
    assert len(prepare(tmp_path / "d.jsonl", tmp_path / "m.yml").labelled) == 4
    with pytest.raises(DataError, match="no issue in the data carries: docs"):
        prepare(tmp_path / "d.jsonl", tmp_path / "m.yml", require_every_label=True)


def test_write_split(tmp_path):
    prepared = prepare(EXAMPLES / "issues.jsonl", EXAMPLES / "labels.yml")
    summary = write_split(prepared, tmp_path / "split", seed=3)
    files = {p.name for p in (tmp_path / "split").iterdir()}
    assert files == {"train.jsonl", "valid.jsonl", "test.jsonl", "unlabelled.jsonl", "split.json"}
    assert json.loads((tmp_path / "split" / "split.json").read_text()) == summary
    sizes = summary["sizes"]
    assert sizes["train"] + sizes["valid"] + sizes["test"] == len(prepared.labelled)
    assert sizes["unlabelled"] == len(prepared.unlabelled)
    train = load_issues(tmp_path / "split" / "train.jsonl").issues
    assert len(train) == sizes["train"]
    for name, rows in summary["slices"].items():
        assert len(rows) == summary["slice_sizes"][name] and max(rows) < sizes["train"]
    # the same seed writes the same split
    assert write_split(prepared, tmp_path / "again", seed=3)["slices"] == summary["slices"]
    # every split file reloads through prepare with the same label map
    again = prepare(tmp_path / "split" / "valid.jsonl", prepared.label_map)
    assert len(again.labelled) == sizes["valid"]
