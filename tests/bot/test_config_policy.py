"""Per-repo config validation and the label policy (pure functions)."""

from __future__ import annotations

import pytest

from bot.config import RepoConfig, parse_config
from bot.policy import (DECIDED, REFRESH, SCORE, STOP, WAIT, IssueFacts, decide, map_scores, plan,
                        triage)
from bot.predictor import Scored

REPO = ["bug", "Documentation", "enhancement", "question", "wontfix"]


def test_no_file_and_empty_file_give_defaults():
    for text in (None, "", "# just a comment\n"):
        config, error = parse_config(text)
        assert error is None and config == RepoConfig()


def test_full_config_parses():
    config, error = parse_config("""
mode: suggest
allow: [bug, enhancement]
deny: [wontfix]
aliases: {feature: enhancement}
threshold: 0.6
thresholds: {bug: 0.8}
max_labels: 1
delay: 30
skip_authors: [renovate]
skip_bots: false
skip_if_labelled: false
pull_requests: true
model: datasets-v2
""")
    assert error is None
    assert config.mode == "suggest" and config.thresholds == {"bug": 0.8} and config.delay == 30
    assert config.model == "datasets-v2" and config.pull_requests


@pytest.mark.parametrize("text,needle", [
    ("mode: [unclosed", "not valid YAML"),
    ("mode: apply\n  bad indent: : :", "not valid YAML"),
    ("- a list", "must be a mapping"),
    ("mode: shout", "mode"),
    ("threshold: 1.5", "threshold"),
    ("thresholds: {bug: -0.1}", "thresholds"),
    ("max_labels: many", "max_labels"),
    ("labels_allowed: [bug]", "labels_allowed"),          # a typo'd key is reported
    ("model: ../../etc/passwd", "not a path"),
])
def test_invalid_configs_give_a_reason_never_raise(text, needle):
    config, error = parse_config(text)
    assert config is None and needle in error


def test_unknown_labels_are_listed_not_fatal():
    config, error = parse_config("allow: [bug, nope]\naliases: {feature: ghost}\nthresholds: {Bug: 0.7}")
    assert error is None
    assert config.unknown_labels(REPO) == ["ghost", "nope"]
    assert RepoConfig().unknown_labels(["bug"]) == []  # the default deny list is not the user's


def test_local_config_may_carry_repository_labels():
    config, error = parse_config("repository_labels: {bug: broken}\nmode: apply")
    assert error is None and config.mode == "apply"


# -- policy ---------------------------------------------------------------------------------------

def _decide(scores, chosen=None, config=None, *, repo_labels=REPO, current_labels=(), removed_by_human=(),
            applied_by_bot=()):
    facts = IssueFacts(action="opened", labels=list(current_labels), removed_by_human=list(removed_by_human),
                       applied_by_bot=list(applied_by_bot), repo_labels={l: None for l in repo_labels})
    scored = Scored(dict(scores), list(chosen if chosen is not None else scores), "test")
    return decide(facts, config or RepoConfig(), scored)


def test_only_labels_that_exist_in_the_repo_with_repo_spelling():
    d = _decide({"bug": 0.9, "documentation": 0.8, "made-up": 0.99})
    assert d.apply == [("bug", 0.9), ("Documentation", 0.8)]


def test_aliases_map_model_labels_to_repo_labels():
    config = RepoConfig(aliases={"feature": "enhancement"})
    assert map_scores({"feature": 0.7, "enhancement": 0.2}, config, REPO) == {"enhancement": 0.7}
    assert _decide({"feature": 0.7}, config=config).apply == [("enhancement", 0.7)]


def test_deny_allow_and_default_deny():
    assert _decide({"wontfix": 0.9}).skipped == {"wontfix": "denied"}
    d = _decide({"bug": 0.9, "question": 0.8}, config=RepoConfig(allow=["question"]))
    assert d.apply == [("question", 0.8)] and d.skipped["bug"] == "not in allow"


def test_never_a_label_a_human_removed():
    d = _decide({"bug": 0.9, "question": 0.8}, removed_by_human=["BUG"])
    assert d.apply == [("question", 0.8)] and "removed" in d.skipped["bug"]


def test_labels_already_on_the_issue_or_added_before_are_not_added_again():
    d = _decide({"bug": 0.9}, current_labels=["bug"], applied_by_bot=["bug"])
    assert d.apply == [] and d.skipped == {"bug": "already on the issue"}
    # the payload does not show it (a stale payload, a dry run): the store remembers
    d = _decide({"bug": 0.9, "question": 0.8}, applied_by_bot=["bug"])
    assert d.apply == [("question", 0.8)] and d.skipped == {"bug": "the bot added it before"}


def test_at_most_max_labels_best_first():
    d = _decide({"bug": 0.5, "question": 0.9, "enhancement": 0.7}, config=RepoConfig(max_labels=2))
    assert d.apply == [("question", 0.9), ("enhancement", 0.7)]
    assert "max_labels" in d.skipped["bug"]
    assert _decide({"bug": 0.9}, config=RepoConfig(max_labels=0)).apply == []


def test_thresholds_override_the_model_rule():
    scores = {"bug": 0.75, "question": 0.65, "enhancement": 0.3}
    assert _decide(scores, chosen=["enhancement"]).apply == [("enhancement", 0.3)]  # model's own rule
    assert _decide(scores, chosen=[], config=RepoConfig(threshold=0.6)).apply == [("bug", 0.75), ("question", 0.65)]
    config = RepoConfig(threshold=0.6, thresholds={"bug": 0.8})
    assert _decide(scores, chosen=[], config=config).apply == [("question", 0.65)]
    # per-label thresholds alone: other labels are never chosen
    assert _decide(scores, chosen=[], config=RepoConfig(thresholds={"question": 0.5})).apply == [("question", 0.65)]


def test_suggest_mode():
    d = _decide({"bug": 0.9}, config=RepoConfig(mode="suggest"))
    assert d.apply == [] and d.suggest == [("bug", 0.9)]


# -- plan: everything decided before the model is asked ---------------------------------------------

def _plan(config=None, now=100.0, **facts):
    facts.setdefault("action", "opened")
    facts.setdefault("repo_labels", {l: None for l in REPO})
    return plan(IssueFacts(**facts), config or RepoConfig(), now=now)


def test_plan_scores_an_ordinary_issue_with_the_allowed_labels():
    p = _plan()
    assert p.kind == SCORE and set(p.model_labels) == {"bug", "Documentation", "enhancement", "question"}
    assert not _plan(RepoConfig(mode="apply")).neighbours and _plan(RepoConfig(mode="suggest")).neighbours
    assert p.neighbours  # the default, apply-and-suggest, may comment with similar issues
    p = _plan(RepoConfig(allow=["bug", "wontfix"], deny=["wontfix"]))
    assert p.model_labels == {"bug": None}
    assert set(_plan(RepoConfig(allow=["nope"])).model_labels) == set(REPO)  # nothing left: all of them


@pytest.mark.parametrize("config,facts,status,reason", [
    (RepoConfig(mode="off"), {}, "skipped", "mode is off"),
    (RepoConfig(), {"is_pull_request": True}, "ignored", "pull_requests: false"),
    (RepoConfig(), {"author": "dependabot[bot]", "author_is_bot": True}, "skipped", "is a bot"),
    (RepoConfig(skip_authors=["Renovate"]), {"author": "renovate"}, "skipped", "skip_authors"),
    (RepoConfig(), {"action": "edited", "applied_by_bot": ["bug"]}, "ignored", "edited after the bot labelled"),
    (RepoConfig(), {"action": "opened", "applied_by_bot": ["bug"]}, "ignored", "already labelled"),
])
def test_plan_stops(config, facts, status, reason):
    p = _plan(config, **facts)
    assert p.kind == STOP and p.status == status and reason in p.reason


def test_plan_lets_bots_and_pull_requests_through_when_configured():
    assert _plan(RepoConfig(skip_bots=False), author="x[bot]", author_is_bot=True).kind == SCORE
    assert _plan(RepoConfig(pull_requests=True), is_pull_request=True).kind == SCORE
    assert _plan(action="reopened", applied_by_bot=["bug"]).kind == SCORE  # reopened: may label again
    assert triage(IssueFacts(action="edited")) is None


def test_plan_leaves_an_issue_a_human_labelled_alone_unless_configured():
    p = _plan(labels=["question"])
    assert p.kind == DECIDED and p.decision.reason == "a human already labelled this issue"
    assert _plan(RepoConfig(skip_if_labelled=False), labels=["question"]).kind == SCORE
    assert _plan(action="reopened", labels=["bug"], applied_by_bot=["bug"]).kind == SCORE  # the bot's own labels are not a human's


def test_plan_waits_out_the_delay_then_looks_again():
    config = RepoConfig(delay=60)
    p = _plan(config, received_at=100.0, now=130.0)
    assert p.kind == WAIT and p.wait == 30.0
    assert _plan(config, received_at=100.0, now=160.0).kind == REFRESH
    assert _plan(config, received_at=100.0, now=160.0, refreshed=True).kind == SCORE
    # what people did while the bot waited counts
    assert _plan(config, received_at=100.0, now=160.0, refreshed=True, labels=["question"]).kind == DECIDED
