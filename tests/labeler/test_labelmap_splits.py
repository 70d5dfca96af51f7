import numpy as np
import pytest

from labeler.data import Issue
from labeler.errors import DataError
from labeler.labelmap import LabelMap
from labeler.pipeline import prepare, write_split
from labeler.splits import split_indices, time_split_indices, training_slices

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def test_yaml_map_many_to_one_and_unlabelled_pool(tmp_path):
    path = tmp_path / "m.yml"
    path.write_text("labels:\n  bug: bug\n  'type: bug': bug\n  docs: documentation\ndescriptions:\n  bug: broken\n")
    lm = LabelMap.from_yaml(path)
    assert lm.labels == ["bug", "documentation"] and lm.descriptions == {"bug": "broken"}
    issues = [Issue("a", labels=["type: bug", "bug"]), Issue("b", labels=["docs"]), Issue("c", labels=["wontfix"])]
    labelled, unlabelled = lm.apply(issues)
    assert [i.labels for i in labelled] == [["bug"], ["documentation"]]
    assert [i.title for i in unlabelled] == ["c"]
    # idempotent: mapped names map to themselves
    assert lm.map_labels(["documentation"]) == ["documentation"]


def test_map_matching_nothing_is_a_clear_error():
    lm = LabelMap({"bug": "bug"})
    with pytest.raises(DataError, match="matches no label.*wontfix"):
        lm.apply([Issue("a", labels=["wontfix"])])


@pytest.mark.parametrize("text, message", [("labels: [\n", "not valid YAML"), ("other: 1\n", "'labels'")])
def test_bad_label_map_files(tmp_path, text, message):
    path = tmp_path / "m.yml"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        LabelMap.from_yaml(path)


def test_shipped_label_maps_match_benchmark():
    assert len(LabelMap.from_yaml(ROOT / "experiments/labels/hf-datasets.yml").labels) == 11
    assert len(LabelMap.from_yaml(ROOT / "experiments/labels/sklearn.yml").labels) == 17


def _y(n=200, k=4, seed=0):
    rng = np.random.RandomState(seed)
    y = (rng.rand(n, k) < [0.5, 0.3, 0.15, 0.05]).astype(int)
    y[y.sum(axis=1) == 0, 0] = 1
    return y


def test_split_is_disjoint_complete_seeded_and_stratified():
    y = _y()
    a, b, c = split_indices(y, seed=0), split_indices(y, seed=0), split_indices(y, seed=1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["train"], c["train"])
    everything = np.concatenate([a["train"], a["valid"], a["test"]])
    assert sorted(everything) == list(range(len(y)))
    assert abs(len(a["train"]) - 100) <= 3 and abs(len(a["valid"]) - 50) <= 3
    # the rare label lands in every part
    assert all(y[a[k], 3].sum() > 0 for k in a)


def test_slices_are_nested_with_reported_sizes():
    y = _y(300)
    slices = training_slices(y, seed=0)
    assert list(slices) == ["8", "16", "32", "64", "128", "256", "all"]  # 512 > 300 skipped
    names = list(slices)
    for small, big in zip(names, names[1:]):
        assert set(slices[small]) <= set(slices[big])
    for name in names[:-1]:
        assert abs(len(slices[name]) - int(name)) <= max(2, int(name) // 10)
    assert len(slices["all"]) == 300


def test_split_command_files(tmp_path):
    examples = ROOT / "labeler/examples"
    prepared = prepare(examples / "issues.jsonl", examples / "labels.yml")
    summary = write_split(prepared, tmp_path, seed=3)
    assert sum(summary["sizes"][k] for k in ("train", "valid", "test")) == len(prepared.labelled)
    assert summary["sizes"]["unlabelled"] == 2
    for name in ("train", "valid", "test", "unlabelled"):
        assert (tmp_path / f"{name}.jsonl").is_file()
    again = prepare(tmp_path / "train.jsonl", prepared.label_map)
    assert len(again.labelled) == summary["sizes"]["train"]


def test_real_split_sizes_match_benchmark(shared_data):
    prepared = prepare(shared_data / "hf-datasets-issues.jsonl.gz", ROOT / "experiments/labels/hf-datasets.yml")
    assert len(prepared.labelled) == 1576
    parts = split_indices(prepared.y(), seed=0)
    assert [len(parts[k]) for k in ("train", "valid", "test")] == [789, 394, 393]


def test_time_split_trains_on_the_past_and_tests_on_the_future():
    rng = np.random.RandomState(0)
    created = [f"2021-{m:02d}-{d:02d}T10:00:00Z" for m, d in zip(rng.randint(1, 13, 40), rng.randint(1, 29, 40))]
    parts = time_split_indices(created)
    assert sorted(np.concatenate(list(parts.values()))) == list(range(40))
    assert (len(parts["train"]), len(parts["valid"]), len(parts["test"])) == (20, 10, 10)
    newest_train = max(created[i] for i in parts["train"])
    assert all(created[i] >= newest_train for i in parts["valid"])
    assert all(created[i] >= max(created[j] for j in parts["valid"]) for i in parts["test"])
    with pytest.raises(ValueError, match="no created_at"):
        time_split_indices(created[:5] + [None])
