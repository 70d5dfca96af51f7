"""The label policy: every decision about labelling one issue, as pure functions (no I/O).

The worker gathers the facts (:class:`IssueFacts`: the event, the issue's author and labels,
what the bot and people did to it before, the repository's labels), reads the repo config,
and asks; the policy decides; the worker carries the decision out. In order:

:func:`triage`  from the event and the store alone, before the config is read: an edit (or
                a second ``opened``) after the bot labelled the issue is left alone;
:func:`plan`    with the config: stop (mode ``off``, pull requests not enabled, the author is
                a bot or listed in ``skip_authors``), wait out ``delay`` and then look at the
                issue again, leave an issue a human already labelled alone
                (``skip_if_labelled``), or ask the model, and about which labels (``allow``
                and ``deny``) and whether similar issues are wanted (for a comment);
:func:`decide`  with the model's scores and decisions (``apply`` / ``suggest`` / ``below``
                per label, for the config's ``precision``): which labels to apply and which
                to suggest, by ``mode``.

Whatever the model says:

* only labels that exist in the repository (matched case-insensitively, as GitHub does,
  and written with the repository's spelling);
* only labels allowed and not denied by the repo config;
* add, never remove (the bot only ever computes labels to add);
* never a label a human removed from this issue, never one already on it or added before;
* only labels the model decided ``apply`` are applied (or that reach the config's
  ``threshold``); in ``apply`` mode nothing is suggested;
* at most ``max_labels`` labels applied, and at most ``max_labels`` suggested, best first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from bot.config import RepoConfig
from bot.predictor import APPLY, BELOW, SUGGEST, Scored

#: modes that may write a suggestion comment
SUGGESTING = ("suggest", "apply-and-suggest")

#: :class:`Plan` kinds
STOP = "stop"          # nothing to do: the delivery ends with ``status`` and ``reason``
WAIT = "wait"          # come back in ``wait`` seconds (the config's delay)
REFRESH = "refresh"    # the delay is over: read the issue again (people may have acted), then plan again
DECIDED = "decided"    # decided without the model (``decision``): record it, apply nothing
SCORE = "score"        # ask the model about ``model_labels``, then :func:`decide`


@dataclass
class IssueFacts:
    """What the worker knows about one issue when it asks the policy."""

    action: str | None = None           # the webhook action (opened, reopened, edited)
    is_pull_request: bool = False
    author: str = ""                    # the issue author's login
    author_is_bot: bool = False         # a GitHub App / bot account, or one of the bot's logins
    labels: list[str] = field(default_factory=list)            # on the issue now
    applied_by_bot: list[str] = field(default_factory=list)    # the bot added them (store)
    removed_by_human: list[str] = field(default_factory=list)  # people took them off (store)
    repo_labels: Mapping[str, str | None] = field(default_factory=dict)  # name -> description
    received_at: float = 0.0            # when the delivery arrived
    refreshed: bool = False             # the issue was read again after waiting out the delay


@dataclass
class LabelDecision:
    """What to do with one issue. ``apply`` and ``suggest`` are (label, score) lists in
    repository spelling, best first; ``skipped`` says why each other candidate was dropped."""

    apply: list[tuple[str, float]] = field(default_factory=list)
    suggest: list[tuple[str, float]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    reason: str = ""

    def to_dict(self) -> dict:
        return {"apply": self.apply, "suggest": self.suggest, "skipped": self.skipped, "reason": self.reason}


@dataclass
class Plan:
    """The policy's answer before the model is asked; ``kind`` is one of the constants above."""

    kind: str
    status: str = ""                    # STOP: the delivery's final status (ignored / skipped)
    reason: str = ""
    wait: float = 0.0                   # WAIT: seconds
    decision: LabelDecision | None = None                 # DECIDED
    model_labels: dict[str, str | None] = field(default_factory=dict)  # SCORE: labels the model may choose
    precision: float | None = None      # SCORE: the precision the model decides for
    neighbours: bool = False            # SCORE: ask for similar issues (a comment shows them)


def _stop(status: str, reason: str) -> Plan:
    return Plan(STOP, status=status, reason=reason)


def triage(facts: IssueFacts) -> Plan | None:
    """The decisions that need no config (the worker asks before reading it, so an edit of a
    labelled issue costs no GitHub read): a STOP plan, or None to go on."""
    if facts.applied_by_bot and facts.action == "edited":
        return _stop("ignored", "edited after the bot labelled it")
    if facts.applied_by_bot and facts.action == "opened":
        return _stop("ignored", "the bot already labelled this issue")
    return None


def model_labels(config: RepoConfig, repo_labels: Mapping[str, str | None]) -> dict[str, str | None]:
    """The repository labels the model may choose from (used by the zero-shot fallback):
    allowed and not denied; all of them when that leaves none."""
    allow = {l.lower() for l in config.allow}
    deny = {l.lower() for l in config.deny}
    kept = {l: d for l, d in repo_labels.items() if (not allow or l.lower() in allow) and l.lower() not in deny}
    return kept or dict(repo_labels)


def training_label_map(config: RepoConfig, repo_labels: Mapping[str, str | None]) -> dict[str, Any]:
    """What ``issue-labeler retrain`` learns for a repository, as label map data
    (``labeler.labelmap.LabelMap.from_dict``): the labels the bot may apply
    (:func:`model_labels`), each named as the model names it, i.e. through ``aliases``
    backwards (``{feature: enhancement}`` learns the repository's ``enhancement`` as
    ``feature``, which :func:`map_scores` turns back into ``enhancement``), with the
    repository's descriptions."""
    to_model = {repo_label.lower(): model for model, repo_label in config.aliases.items()}
    kept = model_labels(config, repo_labels)
    mapping = {label: to_model.get(label.lower(), label) for label in kept}
    descriptions = {mapping[label]: d for label, d in kept.items() if d}
    return {"name": None, "labels": mapping, "descriptions": descriptions, "exclusive": []}


def plan(facts: IssueFacts, config: RepoConfig, *, now: float) -> Plan:
    """What to do with an issue before the model is asked (see the module docstring)."""
    early = triage(facts)
    if early is not None:
        return early
    if config.mode == "off":
        return _stop("skipped", "mode is off")
    if facts.is_pull_request and not config.pull_requests:
        return _stop("ignored", "pull requests are not labelled (pull_requests: false)")
    if config.skip_bots and facts.author_is_bot:
        return _stop("skipped", f"author {facts.author} is a bot")
    if facts.author.lower() in {a.lower() for a in config.skip_authors}:
        return _stop("skipped", f"author {facts.author} is in skip_authors")
    if config.delay > 0:
        due = facts.received_at + config.delay
        if now < due:
            return Plan(WAIT, wait=due - now, reason=f"waiting {config.delay:g}s (delay) so people can go first")
        if not facts.refreshed:
            return Plan(REFRESH, reason="the delay is over: look at the issue again")
    human = {l.lower() for l in facts.labels} - {l.lower() for l in facts.applied_by_bot}
    if config.skip_if_labelled and human:
        return Plan(DECIDED, decision=LabelDecision(reason="a human already labelled this issue"))
    return Plan(SCORE, model_labels=model_labels(config, facts.repo_labels), precision=config.precision,
                neighbours=config.mode in SUGGESTING)


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


def applicable_labels(config: RepoConfig, model_labels: Iterable[str], repo_labels: Iterable[str]) -> list[str]:
    """The repository labels the bot could ever apply with a model that knows
    ``model_labels``: each through ``aliases`` to the repository's spelling (dropped when the
    repository has no such label), allowed and not denied. An issue carrying none of them
    is one the bot has not labelled (``issue-labeler backfill``)."""
    allow = {l.lower() for l in config.allow}
    deny = {l.lower() for l in config.deny}
    mapped = map_scores(dict.fromkeys(model_labels, 0.0), config, repo_labels)
    return sorted(l for l in mapped if (not allow or l.lower() in allow) and l.lower() not in deny)


_RANK = {APPLY: 2, SUGGEST: 1, BELOW: 0}


def label_calls(config: RepoConfig, scored: Scored, repo_labels: Iterable[str]) -> dict[str, tuple[str, float]]:
    """Repository label -> (decision, score): the model's decisions mapped like
    :func:`map_scores` (two model labels on one repository label: the stronger decision, the
    higher score), or, when the config sets ``threshold``/``thresholds``, APPLY for a score
    at or above the label's threshold and BELOW otherwise."""
    mapped = map_scores(scored.scores, config, repo_labels)
    if config.threshold is not None or config.thresholds:
        default = config.threshold if config.threshold is not None else 1.01  # per-label only
        cut = {k.lower(): v for k, v in config.thresholds.items()}
        return {l: (APPLY if s >= cut.get(l.lower(), default) else BELOW, s) for l, s in mapped.items()}
    canonical = {l.lower(): l for l in repo_labels}
    aliases = {k.lower(): v for k, v in config.aliases.items()}
    calls: dict[str, str] = {}
    for label, call in scored.decisions.items():
        name = canonical.get(aliases.get(label.lower(), label).lower())
        if name is not None and _RANK.get(call, 0) > _RANK.get(calls.get(name, BELOW), 0):
            calls[name] = call
    return {l: (calls.get(l, BELOW), s) for l, s in mapped.items()}


def decide(facts: IssueFacts, config: RepoConfig, scored: Scored) -> LabelDecision:
    """Which labels to apply and which to suggest, once :func:`plan` said SCORE and the model
    answered (see :func:`label_calls` for the model's decision per repository label):

    * ``apply`` mode: the APPLY labels are applied; nothing is suggested;
    * ``suggest``: nothing is applied; every label not BELOW is suggested;
    * ``apply-and-suggest``: the APPLY labels are applied, the SUGGEST ones suggested.

    Either list holds at most ``max_labels``, best scores first, and never a label that is
    not allowed, denied, removed by a human, already on the issue or added by the bot before."""
    calls = label_calls(config, scored, facts.repo_labels)
    if config.mode == "suggest":
        to_apply: set[str] = set()
        to_suggest = {APPLY, SUGGEST}
    else:
        to_apply = {APPLY}
        to_suggest = {SUGGEST} if config.mode == "apply-and-suggest" else set()

    allow = {l.lower() for l in config.allow}
    deny = {l.lower() for l in config.deny}
    removed = {l.lower() for l in facts.removed_by_human}
    current = {l.lower() for l in facts.labels}
    by_bot = {l.lower() for l in facts.applied_by_bot}
    out = LabelDecision()
    for label, (call, score) in sorted(calls.items(), key=lambda kv: -kv[1][1]):
        if call == BELOW:
            continue
        key = label.lower()
        picks = out.apply if call in to_apply else out.suggest if call in to_suggest else None
        if picks is None:
            out.skipped[label] = f"only sure enough to suggest (mode: {config.mode})"
        elif allow and key not in allow:
            out.skipped[label] = "not in allow"
        elif key in deny:
            out.skipped[label] = "denied"
        elif key in removed:
            out.skipped[label] = "a human removed it from this issue"
        elif key in current:
            out.skipped[label] = "already on the issue"
        elif key in by_bot:
            out.skipped[label] = "the bot added it before"
        elif len(picks) >= (config.max_labels - len(by_bot) if picks is out.apply else config.max_labels):
            # max_labels bounds the labels the bot ever adds to the issue, earlier ones included
            out.skipped[label] = f"max_labels ({config.max_labels}) reached"
        else:
            picks.append((label, score))
    parts = [f"{len(out.apply)} label(s) to apply"] if out.apply else []
    parts += [f"{len(out.suggest)} label(s) to suggest"] if out.suggest else []
    out.reason = "; ".join(parts) or "no label passed the policy"
    return out
