"""Retraining with a gate: train a candidate on a repository's older issues, score it and the
active model on the newest ones, and promote it only when it is better.

What :func:`retrain` does, in order (``issue-labeler retrain``, :mod:`labeler.cli_retrain`,
brings the data and calls it):

1. **Data.** The issues of a JSONL/CSV file (for a repository: the file
   :func:`labeler.fetch.fetch_updates` keeps up to date), plus the human corrections the bot
   recorded (``issue-labeler export-corrections`` files): :func:`merge_corrections` gives an
   issue the labels a human settled on when that correction is later than the issue's copy
   (``corrected_at`` after its ``updated_at``). Then the label map (raw name -> label).
2. **Time-ordered evaluation** (:func:`time_ordered_split`): issues sorted by ``created_at``;
   the newest N (or X%) are held out, so the score is what the coming weeks would have seen.
   The candidate's own tuning data (decision rule, ``auto``'s choice) is the newest
   :data:`VALID_SHARE` of the rest (:func:`newest_slice`), never the held-out issues.
   Corrected issues that are not in the data (no ``created_at`` to place them) only train.
3. **Candidate.** A strategy (``auto`` by default) fitted on the older part. The version
   stored is exactly the model that was evaluated (it is not refitted on the held-out
   issues afterwards: what is promoted is what passed the gate).
4. **Gate** (:func:`gate`). The candidate and the active model predict the same held-out
   issues, scored on the candidate's label set. Promoted when there is no active model, or
   when the candidate's objective (micro F1, macro F1, or for ``precision=P`` micro F1, as
   ``auto`` ranks) is at least ``margin`` above the active model's and no label with at least
   ``min_support`` held-out issues loses more than ``max_precision_drop`` of precision. A
   drop counts only beyond sampling noise: the candidate's Wilson upper bound of that
   label's precision (:func:`precision_upper`) must also be more than ``max_precision_drop``
   below the active model's precision, since on a few dozen held-out issues one mistake
   moves precision by several points (a literal comparison kept the lifecycle replay's
   model frozen for months).
   Otherwise the candidate is stored as ``staged`` and the report says why.
5. **Registry and report.** The candidate becomes a registry version with its held-out
   metrics; a Markdown and a JSON report (per-label precision/recall/F1 of both models and
   the deltas, data sizes, seconds per step) are written, and the Markdown is appended to
   ``$GITHUB_STEP_SUMMARY`` when that is set (GitHub Actions).

No GitHub code here: the command line fetches.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from labeler.data import Issue, LoadOptions, binarize, detect_format, iter_jsonl, load_issues, parse_time
from labeler.decision import Objective, wilson_lower
from labeler.errors import DataError, ParameterError
from labeler.labelmap import LabelMap
from labeler.metrics import evaluate
from labeler.registry import Registry, Version, check_repo

#: exit statuses of ``issue-labeler retrain``
PROMOTED, FAILED, BAD_INPUT, KEPT = 0, 1, 2, 3
#: the newest share of the training part that tunes the candidate (decision rule, auto's choice)
VALID_SHARE = 0.2
#: a validation slice smaller than this is not worth tuning on: the candidate keeps its defaults
MIN_VALID = 4
_HOLDOUT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$")


class RetrainSettings(BaseModel):
    """How to train the candidate and judge it (the command line's options)."""

    model_config = ConfigDict(extra="forbid")

    strategy: str = Field("auto", description="strategy of the candidate")
    budget: float | None = Field(None, gt=0, description="auto: seconds for fitting all candidates (None: auto's default)")
    objective: str = Field("micro", description="micro, macro, micro+macro or precision=P: what the decision rule is tuned "
                                                "for and what the gate compares (precision=P: micro F1)")
    holdout: str = Field("20%", description="the newest N issues (\"50\") or X% of them (\"20%\") are held out")
    margin: float = Field(0.0, ge=-1, le=1, description="promote only when the candidate's objective is at least "
                                                         "this much above the active model's (0: at least as good)")
    max_precision_drop: float = Field(0.05, ge=0, le=1, description="no gated label may lose more precision than this")
    min_support: int = Field(10, ge=1, description="a label is gated when at least this many held-out issues carry it")

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, value: str) -> str:
        from labeler.strategies import get_strategy

        try:
            get_strategy(value)
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None
        return value

    @field_validator("objective")
    @classmethod
    def _objective(cls, value: str) -> str:
        return str(Objective.parse(value))

    @field_validator("holdout")
    @classmethod
    def _holdout(cls, value: str) -> str:
        holdout_size(value, 100)  # the form only; the size is checked against the data later
        return value.strip()

    @classmethod
    def parse(cls, **values: Any) -> "RetrainSettings":
        """Validated settings; a bad value raises :class:`ParameterError` (one line, the option named)."""
        try:
            settings = cls.model_validate(values)
        except ValidationError as exc:
            err = exc.errors()[0]
            name = "--" + "-".join(str(p) for p in err["loc"]).replace("_", "-")
            raise ParameterError(f"{name}: {err['msg'].removeprefix('Value error, ')}") from None
        if settings.budget is not None and settings.strategy != "auto":
            raise ParameterError("--budget is for --strategy auto")
        return settings

    def params(self) -> dict[str, Any]:
        """The candidate strategy's parameters (auto: its budget and the objective it ranks by)."""
        if self.strategy != "auto":
            return {}
        return {"objective": self.objective, **({"budget": self.budget} if self.budget is not None else {})}


def holdout_size(holdout: str, n: int) -> int:
    """Issues held out of ``n``: ``"50"`` is 50, ``"20%"`` is 20% (rounded, at least 1).
    Raises :class:`ValueError` for anything else."""
    found = _HOLDOUT.match(str(holdout))
    if not found:
        raise ValueError(f"holdout is the newest N issues (e.g. 50) or X% of them (e.g. 20%), not {holdout!r}")
    value, percent = float(found.group(1)), found.group(2)
    if percent:
        if not 0 < value < 100:
            raise ValueError(f"a holdout percentage must be between 0 and 100, not {holdout!r}")
        return max(1, int(round(value * n / 100)))
    if value != int(value) or value < 1:
        raise ValueError(f"a holdout count is a whole number of issues (or X%), not {holdout!r}")
    return int(value)


# -- data ----------------------------------------------------------------------------------
def _created(issue: Issue) -> datetime:
    try:
        return parse_time(issue.created_at or "")
    except ValueError:
        raise DataError(f"issue {issue.number or f'in row {issue.row}'}: created_at {issue.created_at!r} "
                        "is not an ISO 8601 time") from None


def time_ordered_split(issues: Sequence[Issue], holdout: str) -> tuple[list[Issue], list[Issue]]:
    """``(older, newest)``: the issues sorted by ``created_at`` (then number), the newest
    ``holdout`` (N, or X%) last. No held-out issue is older than a training issue. Raises
    :class:`DataError` when an issue has no ``created_at`` or too few issues are left to train."""
    undated = [i for i in issues if not i.created_at]
    if undated:
        first = undated[0]
        raise DataError(f"{len(undated)} labelled issue(s) have no created_at (e.g. "
                        f"{'#' + str(first.number) if first.number is not None else f'row {first.row}'}): "
                        "the time-ordered evaluation needs it on every issue")
    ordered = sorted(issues, key=lambda i: (_created(i), i.number if i.number is not None else -1))
    n_test = holdout_size(holdout, len(ordered))
    if len(ordered) - n_test < 2:
        raise DataError(f"holding out {n_test} of {len(ordered)} labelled issues leaves too few to train on "
                        "(lower --holdout or add data)")
    return ordered[:-n_test], ordered[-n_test:]


def newest_slice(ordered: Sequence[Issue], share: float = VALID_SHARE) -> tuple[list[Issue], list[Issue]]:
    """``(fit, valid)`` of time-ordered issues: ``valid`` is the newest ``share`` of them
    (the candidate's tuning data), empty when it would be under :data:`MIN_VALID` issues."""
    n_valid = int(round(share * len(ordered)))
    if n_valid < MIN_VALID or len(ordered) - n_valid < 2:
        return list(ordered), []
    return list(ordered[:-n_valid]), list(ordered[-n_valid:])


@dataclass
class Correction:
    """The labels people settled on for one issue, and when (``export-corrections``)."""

    number: int
    labels: list[str]
    corrected_at: str | None
    title: str
    body: str


def read_corrections(paths: Sequence[str | Path], repo: str | None = None) -> tuple[dict[int, Correction], int]:
    """``({number: correction}, rows of other repositories)`` from ``export-corrections``
    JSONL files: of several corrections of one issue the latest ``corrected_at`` wins; rows
    whose ``repo`` is not ``repo`` are skipped and counted."""
    found: dict[int, Correction] = {}
    other = 0
    for path in paths:
        for lineno, row in enumerate(iter_jsonl(path), 1):
            if repo and row.get("repo") and row["repo"].lower() != repo.lower():
                other += 1
                continue
            if not isinstance(row.get("number"), int) or not isinstance(row.get("labels"), list):
                raise DataError(f"{path}, line {lineno}: not an export-corrections row (needs number and labels)")
            corr = Correction(row["number"], [str(l) for l in row["labels"]], row.get("corrected_at"),
                              str(row.get("title") or ""), str(row.get("body") or ""))
            old = found.get(corr.number)
            if old is None or _later(corr.corrected_at, old.corrected_at):
                found[corr.number] = corr
    return found, other


def _later(a: str | None, b: str | None) -> bool:
    """Whether time ``a`` is after ``b`` (a known time beats an unknown one; a tie keeps ``b``)."""
    if not a:
        return False
    if not b:
        return True
    return parse_time(a) > parse_time(b)


def merge_corrections(issues: Sequence[Issue], corrections: dict[int, Correction]) -> tuple[list[Issue], list[Issue], dict[str, int]]:
    """``(issues, correction_only, counts)``: each issue whose correction is later than its
    copy (``corrected_at`` after the issue's ``updated_at``, or the copy has none) takes the
    corrected labels (raw names, before the label map); a copy updated after the correction
    already shows what people did since and is kept. Corrections of issues that are not in
    the data become issues of their own (``correction_only``: no ``created_at``, so they
    can only train)."""
    counts = {"applied": 0, "older_than_data": 0, "not_in_data": 0}
    out = []
    seen = set()
    for issue in issues:
        corr = corrections.get(issue.number) if issue.number is not None else None
        if corr is not None:
            seen.add(issue.number)
            if _later(corr.corrected_at, issue.column("updated_at")) or not issue.column("updated_at"):
                issue = replace(issue, labels=list(corr.labels))
                counts["applied"] += 1
            else:
                counts["older_than_data"] += 1
        out.append(issue)
    only = [Issue(title=c.title, body=c.body, labels=list(c.labels), number=n)
            for n, c in sorted(corrections.items()) if n not in seen]
    counts["not_in_data"] = len(only)
    return out, only, counts


# -- scoring and the gate ------------------------------------------------------------------
def score(bundle, texts: Sequence[str], label_sets: Sequence[Sequence[str]], labels: Sequence[str]) -> dict[str, Any]:
    """Metrics of ``bundle``'s decisions on ``labels`` (a bundle that lacks one of them never
    predicts it; its labels outside ``labels`` are not scored)."""
    y = binarize(label_sets, labels)
    pred = np.zeros_like(y)
    if len(texts):
        own = bundle.decide(list(texts))
        index = {l: j for j, l in enumerate(bundle.labels)}
        for j, label in enumerate(labels):
            if label in index:
                pred[:, j] = own[:, index[label]]
    return evaluate(y, pred, list(labels))


def objective_value(metrics: dict[str, Any], objective: str) -> float:
    """The number the gate compares: macro F1 for ``macro``, their mean for ``micro+macro``,
    else micro F1."""
    return float(Objective.parse(objective).value(metrics["micro_f1"], metrics["macro_f1"]))


@dataclass
class Verdict:
    promote: bool
    reasons: list[str]
    #: candidate minus active on the objective (None without an active model)
    delta: float | None


def gate(candidate: dict[str, Any], active: dict[str, Any] | None, settings: RetrainSettings) -> Verdict:
    """Whether the candidate replaces the active model (see the module docstring), and why."""
    if active is None:
        return Verdict(True, ["no active model: the first version is promoted"], None)
    kind = {"macro": "macro F1", "micro+macro": "(micro + macro) / 2 F1"}.get(Objective.parse(settings.objective).kind, "micro F1")
    c, a = objective_value(candidate, settings.objective), objective_value(active, settings.objective)
    delta = c - a
    blocking: list[str] = []
    if delta < settings.margin - 1e-12:
        blocking.append(f"{kind} {c:.3f} vs active {a:.3f} ({delta:+.3f}) is below the margin {settings.margin:+.3f}")
    noise: list[str] = []
    for label, m in candidate["per_label"].items():
        if m["support"] < settings.min_support:
            continue
        before = active["per_label"][label]["precision"]
        drop = before - m["precision"]
        if drop <= settings.max_precision_drop + 1e-12:
            continue
        upper = precision_upper(m)
        what = (f"precision of {label!r} drops {drop:.3f} (from {before:.3f} to {m['precision']:.3f}, "
                f"{m['support']} held-out issues")
        if before - upper > settings.max_precision_drop + 1e-12:
            blocking.append(f"{what}; even its upper bound {upper:.3f} is {before - upper:.3f} below), more than "
                            f"{settings.max_precision_drop:.3f}")
        else:
            noise.append(f"{what}) within sampling noise: its upper bound {upper:.3f} is within "
                         f"{settings.max_precision_drop:.3f} of the active model's")
    if blocking:
        return Verdict(False, blocking + noise, delta)
    return Verdict(True, [f"{kind} {c:.3f} vs active {a:.3f} ({delta:+.3f}) reaches the margin {settings.margin:+.3f}"
                          f" and no label with at least {settings.min_support} held-out issues loses more than "
                          f"{settings.max_precision_drop:.3f} precision", *noise], delta)


def precision_upper(metrics: dict[str, Any]) -> float:
    """The Wilson upper bound (z as the precision objective's, :data:`labeler.decision.WILSON_Z`)
    of one label's held-out precision, from how many issues it was predicted for (derived from
    recall and support for metrics written before ``predicted`` was recorded)."""
    n = metrics.get("predicted")
    if n is None:
        tp = round(metrics["recall"] * metrics["support"])
        n = round(tp / metrics["precision"]) if metrics["precision"] > 0 else 0
    if not n:
        return metrics["precision"]  # nothing predicted: no interval to speak of
    wrong = n - round(metrics["precision"] * n)
    return float(1 - wilson_lower(wrong, n))


# -- the report ----------------------------------------------------------------------------
def per_label_rows(candidate: dict[str, Any], active: dict[str, Any] | None, min_support: int) -> list[dict[str, Any]]:
    """One row per label: support, both models' precision/recall/F1, the deltas, whether gated."""
    rows = []
    for label, c in candidate["per_label"].items():
        row: dict[str, Any] = {"label": label, "support": c["support"], "gated": c["support"] >= min_support,
                               "candidate": {k: c[k] for k in ("precision", "recall", "f1")}}
        if active is not None:
            a = active["per_label"][label]
            row["active"] = {k: a[k] for k in ("precision", "recall", "f1")}
            row["delta"] = {k: c[k] - a[k] for k in ("precision", "recall", "f1")}
        rows.append(row)
    return rows


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown (for a file and GitHub's job summary)."""
    cand, act = report["candidate"], report.get("active")
    outcome = "promoted" if report["outcome"] == "promoted" else "kept as staged (not promoted)"
    lines = [f"## issue-labeler retrain: {report['repo']}", "",
             f"**Candidate version {cand['version']} ({cand['strategy']}) {outcome}.**", ""]
    lines += [f"- {r}" for r in report["reasons"]]
    lines += ["", f"Objective: {report['objective']}; margin {report['gate']['margin']:+.3f}, "
                  f"max precision drop {report['gate']['max_precision_drop']:.3f} for labels with at least "
                  f"{report['gate']['min_support']} held-out issues.", ""]
    head = "| model | version | micro F1 | macro F1 |"
    lines += [head, "|---|---|---|---|",
              f"| candidate | {cand['version']} | {cand['metrics']['micro_f1']:.3f} | {cand['metrics']['macro_f1']:.3f} |"]
    if act:
        lines.append(f"| active | {act['version']} | {act['metrics']['micro_f1']:.3f} | {act['metrics']['macro_f1']:.3f} |")
    lines.append("")
    if act:
        lines += ["| label | support | P cand | P active | ΔP | R cand | R active | ΔR | F1 cand | F1 active | ΔF1 |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in report["per_label"]:
            c, a, d = r["candidate"], r["active"], r["delta"]
            name = r["label"] + ("" if r["gated"] else " (not gated)")
            lines.append(f"| {name} | {r['support']} | " + " | ".join(
                f"{c[k]:.3f} | {a[k]:.3f} | {d[k]:+.3f}" for k in ("precision", "recall", "f1")) + " |")
    else:
        lines += ["| label | support | precision | recall | F1 |", "|---|---|---|---|---|"]
        for r in report["per_label"]:
            c = r["candidate"]
            lines.append(f"| {r['label']} | {r['support']} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} |")
    data = report["data"]
    sizes = data["sizes"]
    lines += ["", f"Data: {data['issues']} issues read, {sizes['labelled']} labelled; trained on {sizes['train']} "
                  f"(created up to {data['train_until']}), tuned on the newest {sizes['valid']} of them, held out the "
                  f"newest {sizes['holdout']} (created {data['holdout_from']} to {data['holdout_until']})."]
    if data.get("corrections"):
        c = data["corrections"]
        lines.append(f"Corrections: {c['applied']} applied, {c['older_than_data']} older than the data, "
                     f"{c['not_in_data']} of issues not in the data (training only), {c['other_repos']} of other repositories.")
    if data.get("fetch"):
        f = data["fetch"]
        lines.append(f"Fetched: {f['read']} issue(s) read ({f['new']} new), {f['total']} in the data"
                     + (f", updated since {f['since']}." if f.get("since") else " (first, full download)."))
    if data.get("labels_left_out"):
        lines.append(f"Labels left out (no training issue): {', '.join(data['labels_left_out'])}.")
    lines += ["", "Seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in report["seconds"].items()), ""]
    return "\n".join(lines)


def write_report(report: dict[str, Any], directory: str | Path) -> tuple[Path, Path]:
    """``retrain-<time>-v<N>.md`` and ``.json`` in ``directory``; returns their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stamp = parse_time(report["started"]).strftime("%Y%m%dT%H%M%SZ")
    stem = directory / f"retrain-{stamp}-v{report['candidate']['version']:04d}"
    md, js = stem.with_suffix(".md"), stem.with_suffix(".json")
    md.write_text(render_markdown(report), encoding="utf-8")
    js.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return md, js


def append_job_summary(markdown: str, environ: dict[str, str] | None = None) -> Path | None:
    """Append to ``$GITHUB_STEP_SUMMARY`` (set in GitHub Actions); returns its path, or None
    when it is not set."""
    path = (os.environ if environ is None else environ).get("GITHUB_STEP_SUMMARY")
    if not path:
        return None
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(markdown + "\n")
    return Path(path)


# -- the whole run -------------------------------------------------------------------------
@dataclass
class RetrainResult:
    promoted: bool
    version: Version
    reasons: list[str]
    report: dict[str, Any]
    markdown: Path
    json: Path

    @property
    def exit_code(self) -> int:
        return PROMOTED if self.promoted else KEPT


def _label_map_for(labelled_train: Sequence[Issue], label_map: LabelMap) -> tuple[LabelMap, list[str]]:
    """The map restricted to labels with at least one training issue, and those left out."""
    present = {l for issue in labelled_train for l in issue.labels}
    kept = [l for l in label_map.labels if l in present]
    left_out = [l for l in label_map.labels if l not in present]
    if not kept:
        raise DataError("no label of the label map has a training issue")
    groups = [g for g in ([l for l in group if l in present] for group in label_map.exclusive) if len(g) >= 2]
    return LabelMap({r: t for r, t in label_map.mapping.items() if t in present},
                    {l: d for l, d in label_map.descriptions.items() if l in present}, label_map.name, groups), left_out


def retrain(data: str | Path, *, registry: Registry, repo: str, settings: RetrainSettings,
            label_map: LabelMap | str | Path | None = None, corrections: Sequence[str | Path] = (),
            report_dir: str | Path | None = None, source: str = "", fetched: dict[str, Any] | None = None,
            seconds: dict[str, float] | None = None,
            progress: Callable[[str], None] = lambda message: None) -> RetrainResult:
    """Train, evaluate, gate, register and report (the module docstring tells how).

    ``data`` is a JSONL or CSV file of issues with ``created_at``; ``label_map`` a
    :class:`LabelMap`, a YAML file, or None (every label in the data); ``fetched`` and
    ``seconds`` describe a download done before (they go into the report); ``progress``
    receives one line per step. ``report_dir`` defaults to ``REGISTRY/OWNER/REPO/reports``."""
    check_repo(repo)
    from labeler.bundle import Bundle

    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    steps: dict[str, float] = dict(seconds or {})
    t0 = time.perf_counter()
    progress(f"reading {data}")
    opts = LoadOptions()
    load = load_issues(data, opts)
    if not load.issues:
        raise DataError(f"{data} holds no issues")
    found, other_repos = read_corrections(corrections, repo)
    issues, correction_only, corr_counts = merge_corrections(load.issues, found)
    if label_map is None:
        label_map = LabelMap.identity([*issues, *correction_only])
        if not label_map.mapping:
            raise DataError(f"{data}: no issue carries a label (give labelled data or a label map)")
    elif not isinstance(label_map, LabelMap):
        label_map = LabelMap.from_yaml(label_map)
    labelled, unlabelled = label_map.apply(issues)
    # corrected issues missing from the data: their mapped labels, if any (never an error)
    extra = [i for i in (replace(c, labels=label_map.map_labels(c.labels)) for c in correction_only) if i.labels]
    older, holdout = time_ordered_split(labelled, settings.holdout)
    fit, valid = newest_slice(older)
    fit = fit + extra
    lm, left_out = _label_map_for(fit, label_map)
    labels = lm.labels
    groups, why = lm.exclusive_groups([i.labels for i in fit], "auto")
    if why:
        progress(why)
    steps["prepare"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    progress(f"training {settings.strategy} on {len(fit)} issues, {len(labels)} labels"
             + (f", tuning on the newest {len(valid)}" if valid else "")
             + (f" (auto budget {settings.budget:g}s)" if settings.budget is not None else ""))
    valid_pair = ([i.text for i in valid], [i.labels for i in valid]) if valid else None
    candidate = Bundle.train(settings.strategy, [i.text for i in fit], [i.labels for i in fit], labels=labels,
                             descriptions=lm.descriptions, valid=valid_pair, params=settings.params(),
                             objective=settings.objective, exclusive=groups, metadata=[i.metadata() for i in fit],
                             out_of_fold=False)  # the rule is tuned on the newest issues, the older ones' labels may have drifted
    candidate.manifest["input"] = {**opts.recorded(), "format": detect_format(data)}
    candidate.manifest["label_map"] = lm.to_dict()
    steps["train"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    active_version = registry.active(repo)
    progress("evaluating the candidate" + (f" and active version {active_version.number}" if active_version else "")
             + f" on the newest {len(holdout)} issues")
    texts, truth = [i.text for i in holdout], [i.labels for i in holdout]
    cand_metrics = score(candidate, texts, truth, labels)
    act_metrics = score(active_version.load(), texts, truth, labels) if active_version else None
    verdict = gate(cand_metrics, act_metrics, settings)
    steps["evaluate"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    metrics = {**cand_metrics, "holdout": len(holdout), "objective": settings.objective,
               "compared_with": active_version.number if active_version else None}
    version = registry.add(repo, candidate, metrics=metrics, source=source, note="; ".join(verdict.reasons))
    if verdict.promote:
        registry.promote(repo, version.number)
    else:
        registry.stage(repo, version.number)
    steps["register"] = time.perf_counter() - t0
    steps["total"] = sum(steps.values())
    progress(f"version {version.number} " + ("promoted" if verdict.promote else "kept as staged") + ": "
             + "; ".join(verdict.reasons))

    fitted = candidate.strategy.fitted_info if candidate.strategy.name == "auto" else {}
    report: dict[str, Any] = {
        "repo": repo, "source": source, "started": started_at,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "outcome": "promoted" if verdict.promote else "staged",
        "exit_code": PROMOTED if verdict.promote else KEPT,
        "reasons": verdict.reasons, "objective": settings.objective,
        "gate": {"margin": settings.margin, "max_precision_drop": settings.max_precision_drop,
                 "min_support": settings.min_support, "delta": verdict.delta},
        "candidate": {"version": version.number, "strategy": settings.strategy,
                      "chosen": fitted.get("chosen"), "metrics": cand_metrics},
        "active": ({"version": active_version.number, "strategy": active_version.info.get("strategy"),
                    "metrics": act_metrics} if active_version else None),
        "per_label": per_label_rows(cand_metrics, act_metrics, settings.min_support),
        "data": {
            "file": str(data), "issues": len(load.issues), "labels": labels, "labels_left_out": left_out,
            "sizes": {"labelled": len(labelled), "unlabelled": len(unlabelled), "train": len(fit),
                      "valid": len(valid), "holdout": len(holdout)},
            "train_until": older[-1].created_at, "holdout_from": holdout[0].created_at,
            "holdout_until": holdout[-1].created_at,
            "corrections": ({**corr_counts, "other_repos": other_repos} if corrections else None),
            "fetch": fetched,
        },
        "seconds": {k: round(v, 2) for k, v in steps.items()},
    }
    out_dir = Path(report_dir) if report_dir is not None else registry.root / repo / "reports"
    md, js = write_report(report, out_dir)
    return RetrainResult(verdict.promote, version, verdict.reasons, report, md, js)


__all__ = ["BAD_INPUT", "Correction", "FAILED", "KEPT", "PROMOTED", "RetrainResult", "RetrainSettings", "Verdict",
           "append_job_summary", "gate", "holdout_size", "merge_corrections", "newest_slice", "objective_value",
           "per_label_rows", "read_corrections", "render_markdown", "retrain", "score", "time_ordered_split",
           "write_report"]
