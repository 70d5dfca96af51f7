"""From a data file (or a directory written by ``split``) to labelled texts: the steps every
command and experiment shares, in one place."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labeler.data import Issue, LoadOptions, LoadResult, binarize, load_issues, write_jsonl
from labeler.errors import DataError
from labeler.labelmap import LabelMap
from labeler.splits import split_indices, training_slices


@dataclass
class Prepared:
    """Labelled and unlabelled issues of one file, after the label map."""

    labelled: list[Issue]
    unlabelled: list[Issue]
    label_map: LabelMap
    load: LoadResult

    @property
    def labels(self) -> list[str]:
        return self.label_map.labels

    def texts(self) -> list[str]:
        return [i.text for i in self.labelled]

    def label_sets(self) -> list[list[str]]:
        return [i.labels for i in self.labelled]

    def metadata(self) -> list[dict]:
        """One record per labelled issue (number, id, title) for ``fit(..., metadata=)``."""
        return [i.metadata() for i in self.labelled]

    def y(self) -> np.ndarray:
        return binarize(self.label_sets(), self.labels)


def prepare(path: str | Path, label_map: LabelMap | str | Path | None = None,
            opts: LoadOptions | None = None) -> Prepared:
    """Load ``path``, map its labels (no map: every label maps to itself) and split off the
    unlabelled pool. Raises :class:`DataError` when the file holds no issue, or no issue
    carries a label the map knows (``LabelMap.apply`` checks the latter)."""
    load = load_issues(path, opts)
    if not load.issues:
        raise DataError(f"{path} holds no issues")
    if label_map is None:
        label_map = LabelMap.identity(load.issues)
        if not label_map.mapping:
            raise DataError(f"{path}: no issue carries a label (give labelled data or a label map)")
    elif not isinstance(label_map, LabelMap):
        label_map = LabelMap.from_yaml(label_map)
    labelled, unlabelled = label_map.apply(load.issues)
    return Prepared(labelled, unlabelled, label_map, load)


def write_split(prepared: Prepared, out_dir: str | Path, seed: int = 0) -> dict:
    """Write ``train/valid/test/unlabelled.jsonl`` and ``split.json`` (sizes, label counts,
    the nested training slices as row numbers of train.jsonl) to ``out_dir``."""
    out = Path(out_dir)
    y = prepared.y()
    parts = split_indices(y, seed=seed)
    slices = training_slices(y[parts["train"]], seed=seed)
    summary: dict = {"seed": seed, "labels": prepared.labels, "label_map_name": prepared.label_map.name,
                     "read": prepared.load.n_read, "duplicates_dropped": prepared.load.n_duplicates,
                     "pull_requests_excluded": prepared.load.n_pull_requests_dropped, "sizes": {},
                     "label_counts": {}}
    for name, idx in parts.items():
        issues = [prepared.labelled[i] for i in idx]
        write_jsonl(out / f"{name}.jsonl", (i.to_record() for i in issues))
        summary["sizes"][name] = len(issues)
        summary["label_counts"][name] = dict(zip(prepared.labels, map(int, y[idx].sum(axis=0))))
    write_jsonl(out / "unlabelled.jsonl", (i.to_record() for i in prepared.unlabelled))
    summary["sizes"]["unlabelled"] = len(prepared.unlabelled)
    summary["slices"] = {name: idx.tolist() for name, idx in slices.items()}
    summary["slice_sizes"] = {name: len(idx) for name, idx in slices.items()}
    (out / "split.json").write_text(json.dumps(summary, indent=2))
    return summary
