"""Per-repo config validation and the label policy (pure functions)."""

from __future__ import annotations

import pytest

from bot.config import RepoConfig, parse_config
from bot.policy import decide, map_scores

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

def _decide(scores, chosen=None, config=None, **kw):
    return decide(scores=scores, chosen=list(chosen if chosen is not None else scores), config=config or RepoConfig(),
                  repo_labels=kw.pop("repo_labels", REPO), **kw)


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


def test_skip_issue_a_human_labelled_unless_configured():
    assert _decide({"bug": 0.9}, current_labels=["question"]).apply == []
    d = _decide({"bug": 0.9}, current_labels=["question"], config=RepoConfig(skip_if_labelled=False))
    assert d.apply == [("bug", 0.9)]
    # labels the bot itself added do not count as a human's
    assert _decide({"question": 0.9}, current_labels=["bug"], applied_by_bot=["bug"]).apply == [("question", 0.9)]


def test_labels_already_on_the_issue_are_not_added_again():
    d = _decide({"bug": 0.9}, current_labels=["bug"], applied_by_bot=["bug"])
    assert d.apply == [] and d.skipped == {"bug": "already on the issue"}


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


def test_suggest_and_off_modes():
    d = _decide({"bug": 0.9}, config=RepoConfig(mode="suggest"))
    assert d.apply == [] and d.suggest == [("bug", 0.9)]
    d = _decide({"bug": 0.9}, config=RepoConfig(mode="off"))
    assert d.apply == [] and d.suggest == [] and d.reason == "mode is off"
