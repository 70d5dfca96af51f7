"""From a data file (or a directory written by ``split``) to labelled texts: the steps every
command and experiment shares, in one place."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

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
    #: the file the issues came from
    source: Path | None = None

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
            opts: LoadOptions | None = None, *, require_every_label: bool = False) -> Prepared:
    """Load ``path``, map its labels (no map: every label maps to itself) and split off the
    unlabelled pool. Raises :class:`DataError` when the file holds no issue, or no issue
    carries a label the map knows, or (``require_every_label``: data to split or train on)
    when the map names a label no issue carries (``LabelMap.apply`` checks the latter two)."""
    load = load_issues(path, opts)
    if not load.issues:
        raise DataError(f"{path} holds no issues")
    if label_map is None:
        label_map = LabelMap.identity(load.issues)
        if not label_map.mapping:
            raise DataError(f"{path}: no issue carries a label (give labelled data or a label map)")
    elif not isinstance(label_map, LabelMap):
        label_map = LabelMap.from_yaml(label_map)
    labelled, unlabelled = label_map.apply(load.issues, require_every_label=require_every_label)
    return Prepared(labelled, unlabelled, label_map, load, Path(path))


def write_issues(path: str | Path, issues: Sequence[Issue], fmt: str = "jsonl",
                 columns: Sequence[str] | None = None) -> int:
    """Write issues as they were read: CSV rows under the input's header, or the original JSONL
    objects (an issue built in code, with no input record, is written as its fields)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        header = list(columns or [])
        for issue in issues:  # rows of an issue built in code bring their own fields
            for key in (issue.raw or issue.to_record()):
                if key not in header:
                    header.append(key)
        with open(path, "w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=header, extrasaction="ignore")
            writer.writeheader()
            for issue in issues:
                writer.writerow(issue.raw if issue.raw is not None else _csv_record(issue))
        return len(issues)
    return write_jsonl(path, (issue.raw if issue.raw is not None else issue.to_record() for issue in issues))


def _csv_record(issue: Issue) -> dict:
    record = issue.to_record()
    record["labels"] = ", ".join(issue.labels)
    return record


def write_split(prepared: Prepared, out_dir: str | Path, seed: int = 0, *, valid: float | int = 0.25,
                test: float | int = 0.25, test_set: Prepared | None = None,
                options: LoadOptions | None = None) -> dict:
    """Write ``train/valid/test/unlabelled`` and ``split.json`` (sizes, label counts, the nested
    training slices as row numbers of the train file, how to read the files) to ``out_dir``.

    Every file keeps the input's records unchanged (all columns, raw label names), in the
    input's format: ``.csv`` with the same header for CSV input, the original objects as
    ``.jsonl`` otherwise. ``valid`` and ``test`` are fractions or counts (see
    :func:`labeler.splits.split_indices`). With ``test_set`` (a prepared file, e.g. a
    benchmark's official test file) that is the test set and only the rest is split into
    train and valid; issues whose text is also in the test set are left out of train and valid.
    ``options`` (how the input was read) and the label map are recorded in split.json, so
    ``train`` on the directory needs neither again."""
    out = Path(out_dir)
    pool = prepared.labelled
    n_overlap = 0
    if test_set is not None:
        test_texts = {i.text for i in test_set.labelled}
        pool = [i for i in prepared.labelled if i.text not in test_texts]
        n_overlap = len(prepared.labelled) - len(pool)
        test = 0
    y = binarize([i.labels for i in pool], prepared.labels)
    parts = split_indices(y, seed=seed, valid=valid, test=test)
    slices = training_slices(y[parts["train"]], seed=seed)
    fmt = prepared.load.format
    ext = "csv" if fmt == "csv" else "jsonl"
    summary: dict = {"seed": seed, "labels": prepared.labels, "label_map_name": prepared.label_map.name,
                     "read": prepared.load.n_read, "duplicates_dropped": prepared.load.n_duplicates,
                     "pull_requests_excluded": prepared.load.n_pull_requests_dropped,
                     "not_matching_where": prepared.load.n_filtered, "sizes": {}, "label_counts": {}, "files": {}}
    issues_of = {name: [pool[i] for i in idx] for name, idx in parts.items()}
    if test_set is not None:
        issues_of["test"] = list(test_set.labelled)
        summary["test_from"] = str(test_set.source) if test_set.source else None
        summary["dropped_as_in_test_set"] = n_overlap
    for name, issues in issues_of.items():
        if name == "test" and test_set is not None:
            tfmt = test_set.load.format
            filename = f"test.{'csv' if tfmt == 'csv' else 'jsonl'}"
            write_issues(out / filename, issues, tfmt, test_set.load.columns)
        else:
            filename = f"{name}.{ext}"
            write_issues(out / filename, issues, fmt, prepared.load.columns)
        summary["files"][name] = filename
        summary["sizes"][name] = len(issues)
        counts = binarize([i.labels for i in issues], prepared.labels).sum(axis=0) if issues else [0] * len(prepared.labels)
        summary["label_counts"][name] = dict(zip(prepared.labels, map(int, counts)))
    write_issues(out / f"unlabelled.{ext}", prepared.unlabelled, fmt, prepared.load.columns)
    summary["files"]["unlabelled"] = f"unlabelled.{ext}"
    summary["sizes"]["unlabelled"] = len(prepared.unlabelled)
    summary["slices"] = {name: idx.tolist() for name, idx in slices.items()}
    summary["slice_sizes"] = {name: len(idx) for name, idx in slices.items()}
    if options is not None:
        summary["input"] = {**options.recorded(), "format": fmt}
    summary["label_map"] = prepared.label_map.to_dict()
    (out / "split.json").write_text(json.dumps(summary, indent=2))
    return summary
