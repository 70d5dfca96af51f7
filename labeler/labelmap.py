"""Label maps as data: which raw GitHub label names become which labels to predict.

A label map is a YAML file::

    # optional: a name for the label set
    name: hf-datasets
    labels:                 # raw label name -> label to predict
      bug: bug
      "type: bug": bug      # several raw names may map to one
      enhancement: enhancement
      documentation: documentation
    descriptions:           # optional: zero-shot hypotheses; linear learns from them for rare labels
      bug: Something isn't working
    exclusive:              # optional: groups of mutually exclusive labels (at most one is chosen)
      - [bug, enhancement]

``labels`` may also be a plain list (each name maps to itself). An issue with none of the
mapped labels goes to the unlabelled pool. Mapping is idempotent: a name that already is a
target label stays itself, so files written by ``split`` can be given the same map again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import yaml

from labeler.data import Issue
from labeler.decision import check_groups
from labeler.errors import DataError


@dataclass
class LabelMap:
    mapping: dict[str, str]
    descriptions: dict[str, str] = field(default_factory=dict)
    name: str | None = None
    #: groups of mutually exclusive target labels
    exclusive: list[list[str]] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        """Target labels, in the order they first appear in the file."""
        return list(dict.fromkeys(self.mapping.values()))

    @classmethod
    def from_yaml(cls, path: str | Path) -> "LabelMap":
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"label map not found: {path}") from None
        except yaml.YAMLError as exc:
            raise DataError(f"label map {path} is not valid YAML: {exc}") from None
        if not isinstance(data, dict) or "labels" not in data:
            raise DataError(f"label map {path} needs a top-level 'labels' key (raw name -> label)")
        raw = data["labels"]
        if isinstance(raw, list):
            mapping = {str(name): str(name) for name in raw}
        elif isinstance(raw, dict):
            mapping = {str(k): str(v) for k, v in raw.items() if v is not None}
        else:
            raise DataError(f"label map {path}: 'labels' must be a mapping or a list")
        if not mapping:
            raise DataError(f"label map {path} maps no labels")
        descriptions = {str(k): str(v) for k, v in (data.get("descriptions") or {}).items()}
        groups = data.get("exclusive") or []
        if not isinstance(groups, list) or not all(isinstance(g, list) for g in groups):
            raise DataError(f"label map {path}: 'exclusive' must be a list of label lists, e.g. [[bug, enhancement]]")
        try:
            groups = check_groups(groups, list(dict.fromkeys(mapping.values())))
        except ValueError as exc:
            raise DataError(f"label map {path}: {exc}") from None
        return cls(mapping, descriptions, data.get("name"), groups)

    def to_dict(self) -> dict:
        """The map as JSON-ready data (what bundles and split.json record); :meth:`from_dict` reads it."""
        return {"name": self.name, "labels": dict(self.mapping), "descriptions": dict(self.descriptions),
                "exclusive": [list(g) for g in self.exclusive]}

    @classmethod
    def from_dict(cls, data: dict) -> "LabelMap":
        mapping = {str(k): str(v) for k, v in (data.get("labels") or {}).items()}
        if not mapping:
            raise DataError("a recorded label map maps no labels")
        return cls(mapping, {str(k): str(v) for k, v in (data.get("descriptions") or {}).items()},
                   data.get("name"), [list(g) for g in data.get("exclusive") or []])

    @classmethod
    def identity(cls, issues: Iterable[Issue], min_count: int = 1) -> "LabelMap":
        """Every label seen at least ``min_count`` times maps to itself (no map given)."""
        counts: dict[str, int] = {}
        for issue in issues:
            for label in issue.labels:
                counts[label] = counts.get(label, 0) + 1
        names = sorted(n for n, c in counts.items() if c >= min_count)
        return cls({n: n for n in names})

    def exclusive_groups(self, label_sets: Sequence[Sequence[str]], mode: str = "auto") -> tuple[list[list[str]], str]:
        """``(groups, why)``: the exclusive groups to decide with. ``mode="auto"``: the map's
        own groups, or, when it declares none and every labelled issue carries exactly one
        label, the whole label set as one group (a single-label problem); ``"none"``: no groups."""
        if mode == "none":
            return [], "no exclusive groups (--exclusive none)"
        if mode != "auto":
            raise DataError(f"--exclusive takes auto or none, not {mode!r}")
        if self.exclusive:
            return [list(g) for g in self.exclusive], f"{len(self.exclusive)} exclusive group(s) from the label map"
        if len(self.labels) > 1 and label_sets and all(len(s) == 1 for s in label_sets):
            return [self.labels], ("every labelled issue carries exactly one label: the labels are treated as "
                                   "mutually exclusive (--exclusive none to turn this off)")
        return [], ""

    def map_labels(self, raw: Sequence[str]) -> list[str]:
        targets = set(self.mapping.values())
        out = []
        for name in raw:
            target = self.mapping.get(name, name if name in targets else None)
            if target is not None and target not in out:
                out.append(target)
        return out

    def apply(self, issues: Sequence[Issue], *, require_every_label: bool = False) -> tuple[list[Issue], list[Issue]]:
        """``(labelled, unlabelled)``: issues with their labels mapped, and those with none.

        Raises :class:`DataError` when the map matches no label at all in the data, and, with
        ``require_every_label`` (the data a model is split or trained from), when it names a
        label that no issue carries: validation, test and new issues may lack a label."""
        labelled, unlabelled = [], []
        for issue in issues:
            mapped = self.map_labels(issue.labels)
            copy = Issue(**{**issue.__dict__, "labels": mapped})
            (labelled if mapped else unlabelled).append(copy)
        if issues and not labelled:
            seen = sorted({name for issue in issues for name in issue.labels})
            hint = f"labels in the data: {', '.join(seen[:15])}{' ...' if len(seen) > 15 else ''}" if seen \
                else "the data has no labels at all"
            raise DataError(f"the label map matches no label in the data ({hint})")
        found = {name for issue in labelled for name in issue.labels}
        absent = [l for l in self.labels if l not in found]
        if require_every_label and issues and absent:
            raise DataError(f"the label map names label(s) no issue in the data carries: {', '.join(absent[:15])}"
                            f"{' ...' if len(absent) > 15 else ''} (remove them from the map, or add data)")
        return labelled, unlabelled
