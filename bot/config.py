"""Per-repository configuration: ``.github/issue-labeler.yml`` on the default branch.

Example (every key optional; these are the defaults unless noted)::

    mode: apply-and-suggest  # apply | suggest | apply-and-suggest | off (see below)
    precision: 0.9           # how sure the model must be to apply a label, 0.5 .. 1.0
    allow: []                # labels the bot may apply; empty = every repository label
    deny: [duplicate, invalid, wontfix]
    aliases: {}              # model label -> repository label, e.g. {feature: enhancement}
    threshold: null          # a score >= threshold applies a label (null: the model decides)
    thresholds: {}           # per label, e.g. {bug: 0.8}; overrides threshold for that label
    max_labels: 2            # the bot adds at most this many labels to one issue
    delay: 0                 # seconds to wait before labelling, so humans can go first
    skip_authors: []         # logins whose issues are left alone
    skip_bots: true          # leave issues opened by bots (dependabot[bot], ...) alone
    skip_if_labelled: true   # leave issues a human already labelled alone
    pull_requests: false     # also label pull requests (pull_request events)
    model: null              # a bundle name under ISSUE_LABELER_MODELS_DIR (null: the default)

The model (``Bundle.classify``) decides each label for the repository's ``precision``:
``apply`` when it is sure enough that such a call is right at least that often (judged on
the bundle's validation issues), ``suggest`` when the label is worth showing a person (a
label that cannot reach that precision is at most a suggestion), ``below`` otherwise. Of
labels in one exclusive group, at most one is not ``below``. The modes:

* ``apply``: add the labels decided ``apply``; suggest nothing;
* ``suggest``: add nothing; suggest every label not ``below`` in one comment, with scores;
* ``apply-and-suggest``: add the ``apply`` labels and suggest the ``suggest`` ones;
* ``off``: do nothing.

``threshold``/``thresholds`` replace the model's decisions: a label scoring at least its
threshold is ``apply``, every other one ``below`` (``precision`` is then not used).
``max_labels`` bounds the labels added and, separately, the labels suggested.

Validation is pydantic (unknown keys are errors, so a typo is reported rather than silently
ignored). :func:`parse_config` never raises: it returns ``(config, None)`` or
``(None, reason)``; the worker logs the reason and does not label (see :mod:`bot.worker`).
Label names that do not exist in the repository are not a parse error (the config cannot
know the repository's labels); :meth:`RepoConfig.unknown_labels` lists them and the worker
records them as warnings and ignores them.
"""

from __future__ import annotations

import re
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

CONFIG_PATH = ".github/issue-labeler.yml"
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class RepoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["apply", "suggest", "apply-and-suggest", "off"] = "apply-and-suggest"
    precision: float = Field(default=0.9, ge=0.5, le=1.0)
    allow: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=lambda: ["duplicate", "invalid", "wontfix"])
    aliases: dict[str, str] = Field(default_factory=dict)
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    thresholds: dict[str, float] = Field(default_factory=dict)
    max_labels: int = Field(default=2, ge=0, le=20)
    delay: float = Field(default=0, ge=0, le=24 * 3600)
    skip_authors: list[str] = Field(default_factory=list)
    skip_bots: bool = True
    skip_if_labelled: bool = True
    pull_requests: bool = False
    model: str | None = None

    @field_validator("thresholds")
    @classmethod
    def _thresholds_in_range(cls, value: dict[str, float]) -> dict[str, float]:
        for label, t in value.items():
            if not 0.0 <= t <= 1.0:
                raise ValueError(f"threshold for {label!r} is {t}, not between 0 and 1")
        return value

    @field_validator("model")
    @classmethod
    def _model_is_a_name(cls, value: str | None) -> str | None:
        # A repository must not be able to point the server at an arbitrary path.
        if value is not None and not _MODEL_NAME.match(value):
            raise ValueError(f"model {value!r} must be a bundle name (letters, digits, . _ -), not a path")
        return value

    def unknown_labels(self, repo_labels: set[str] | list[str]) -> list[str]:
        """Repository labels named in this config that the repository does not have."""
        known = {l.lower() for l in repo_labels}
        deny = self.deny if "deny" in self.model_fields_set else []  # the default list may not exist
        named = [*self.allow, *deny, *self.aliases.values(), *self.thresholds]
        return sorted({n for n in named if n.lower() not in known})


def parse_config(text: str | bytes | None) -> tuple[RepoConfig | None, str | None]:
    """``(config, None)`` for a valid file or no file; ``(None, reason)`` otherwise."""
    if text is None:
        return RepoConfig(), None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return None, f"{CONFIG_PATH} is not valid YAML: {exc}"
    if data is None:
        return RepoConfig(), None
    if not isinstance(data, dict):
        return None, f"{CONFIG_PATH} must be a mapping of settings, not {type(data).__name__}"
    # A local dry-run config may carry the label set too (see bot.github.DryRunGitHub).
    data = {k: v for k, v in data.items() if k != "repository_labels"}
    try:
        return RepoConfig.model_validate(data), None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors())
        return None, f"{CONFIG_PATH} is invalid: {problems}"
