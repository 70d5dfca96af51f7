"""The label policy: which of the model's labels the bot may actually add.

Pure functions, no I/O. Whatever the model says:

* only labels that exist in the repository (matched case-insensitively, as GitHub does,
  and written with the repository's spelling);
* only labels allowed and not denied by the repo config;
* add, never remove (the bot only ever computes labels to add);
* never a label a human removed from this issue;
* skip an issue a human already labelled (``skip_if_labelled``);
* at most ``max_labels`` labels, best scores first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from bot.config import RepoConfig


@dataclass
class LabelDecision:
    """What to do with one issue. ``apply`` and ``suggest`` are (label, score) lists in
    repository spelling, best first; ``skipped`` says why each other candidate was dropped."""

    apply: list[tuple[str, float]] = field(default_factory=list)
    suggest: list[tuple[str, float]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    reason: str = ""


def map_scores(scores: Mapping[str, float], config: RepoConfig, repo_labels: Iterable[str]) -> dict[str, float]:
    """Model label scores -> repository label scores, through ``aliases`` and case-insensitive
    matching. Model labels the repository does not have are dropped; when two model labels
    land on one repository label the higher score wins."""
    canonical = {l.lower(): l for l in repo_labels}
    aliases = {k.lower(): v for k, v in config.aliases.items()}
    out: dict[str, float] = {}
    for label, score in scores.items():
        target = aliases.get(label.lower(), label)
        name = canonical.get(target.lower())
        if name is not None and score > out.get(name, float("-inf")):
            out[name] = float(score)
    return out


def decide(*, scores: Mapping[str, float], chosen: Sequence[str], config: RepoConfig,
           repo_labels: Iterable[str], current_labels: Iterable[str] = (),
           removed_by_human: Iterable[str] = (), applied_by_bot: Iterable[str] = ()) -> LabelDecision:
    """Apply the policy to one issue.

    ``scores`` are the model's scores per model label; ``chosen`` the labels the model's own
    decision rule picked (used unless the config sets ``threshold``/``thresholds``);
    ``current_labels`` are on the issue now, ``applied_by_bot`` are those among them the bot
    added, ``removed_by_human`` were taken off this issue by a person."""
    repo_labels = list(repo_labels)
    out = LabelDecision()
    if config.mode == "off":
        out.reason = "mode is off"
        return out
    current = {l.lower() for l in current_labels}
    human_labels = current - {l.lower() for l in applied_by_bot}
    if config.skip_if_labelled and human_labels:
        out.reason = "a human already labelled this issue"
        return out

    mapped = map_scores(scores, config, repo_labels)
    if config.threshold is not None or config.thresholds:
        default = config.threshold if config.threshold is not None else 1.01  # per-label only
        cut = {k.lower(): v for k, v in config.thresholds.items()}
        candidates = [l for l, s in mapped.items() if s >= cut.get(l.lower(), default)]
    else:
        candidates = list(map_scores({c: scores.get(c, 0.0) for c in chosen}, config, repo_labels))

    allow = {l.lower() for l in config.allow}
    deny = {l.lower() for l in config.deny}
    removed = {l.lower() for l in removed_by_human}
    picks: list[tuple[str, float]] = []
    for label in sorted(candidates, key=lambda l: -mapped[l]):
        key = label.lower()
        if allow and key not in allow:
            out.skipped[label] = "not in allow"
        elif key in deny:
            out.skipped[label] = "denied"
        elif key in removed:
            out.skipped[label] = "a human removed it from this issue"
        elif key in current:
            out.skipped[label] = "already on the issue"
        elif len(picks) >= config.max_labels:
            out.skipped[label] = f"max_labels ({config.max_labels}) reached"
        else:
            picks.append((label, mapped[label]))
    if config.mode == "apply":
        out.apply = picks
    else:
        out.suggest = picks
    out.reason = f"{len(picks)} label(s) to {config.mode}" if picks else "no label passed the policy"
    return out
