"""The bot's only door into ``labeler``: load a bundle, score an issue, ask for neighbours
(and the issue text and the command line, see below).

Which model answers for a repository:

1. the bundle named by the repo config's ``model:`` key, looked up under the models
   directory (``ISSUE_LABELER_MODELS_DIR``); only a name, never a path, so a repository
   cannot make the server load arbitrary files;
2. else the default bundle (``ISSUE_LABELER_BUNDLE``);
3. else, with no trained bundle at all, the zero-shot strategy on the repository's own label
   names and descriptions (``Bundle.train("zero_shot", [], [], labels=..., descriptions=...)``),
   built once per label set and cached. A fresh install scores from the first issue (with
   no validation data behind it, its labels are suggestions: see ``precision`` in
   :mod:`bot.config`).

Everything that touches ``labeler`` is in this file, so the ML side can change freely
behind :class:`Predictor`. That includes :func:`issue_text`, the one function that turns an
issue's title and body into the text a model sees: training (``labeler.data``), the worker
(:mod:`bot.sansio`) and ``export-corrections`` (:mod:`bot.store`) all call it, so the bot
scores exactly the text the model was trained on; and :func:`labeler_cli`, the command line
:mod:`bot.cli` extends (with :func:`labeler_cli_context`, what its commands may ask of the
bot). ``tests/bot/test_layers.py`` checks that no other bot module
imports ``labeler``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol

from labeler.data import issue_text  # the one text builder, for training and serving alike

__all__ = ["APPLY", "BELOW", "SUGGEST", "BundlePredictor", "FALLBACK_STRATEGY", "Predictor", "PredictorUnavailable",
           "Scored", "describe_model", "issue_text", "labeler_cli", "labeler_cli_context"]

log = logging.getLogger(__name__)

FALLBACK_STRATEGY = "zero_shot"


class PredictorUnavailable(Exception):
    """No model can score this issue (bad bundle, or no bundle and no zero-shot strategy)."""


#: the model's decision for one label (``labeler``'s ``LabelCall.decision``)
APPLY, SUGGEST, BELOW = "apply", "suggest", "below"


@dataclass
class Scored:
    """The model's view of one issue: a score per model label; its decision per label
    (:data:`APPLY` when it is confident enough for the precision asked, :data:`SUGGEST` when
    it is worth showing a person, :data:`BELOW` otherwise); the labels decided
    :data:`APPLY`, best first (``chosen``); which model it was; and similar issues when it
    knows them. Without ``decisions``, the ``chosen`` labels are APPLY and the rest BELOW."""

    scores: dict[str, float]
    chosen: list[str]
    model: str
    neighbours: list[dict[str, Any]] = field(default_factory=list)
    decisions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.decisions:
            chosen = set(self.chosen)
            self.decisions = {l: APPLY if l in chosen else BELOW for l in self.scores}
            self.decisions.update({l: APPLY for l in chosen})


class Predictor(Protocol):
    def score(self, text: str, repo_labels: Mapping[str, str | None], *, model: str | None = None,
              precision: float | None = None, neighbours: bool = False) -> Scored: ...

    def labels(self, repo_labels: Mapping[str, str | None], *, model: str | None = None) -> list[str]: ...

    def describe(self) -> str: ...


def labeler_cli():
    """labeler's command line (a typer app): :mod:`bot.cli` adds the bot's commands to it, so
    ``issue-labeler`` is one command for both."""
    from labeler.cli import app

    return app


def labeler_cli_context(*, repo_label_map) -> dict[str, Any]:
    """The typer context object through which labeler's commands use what the bot knows:
    ``repo_label_map(repo, token, base_url)`` gives ``retrain`` a repository's label set
    (see ``labeler.cli_retrain``)."""
    from labeler.cli_retrain import REPO_LABEL_MAP

    return {REPO_LABEL_MAP: repo_label_map}


def describe_model(bundle_path: str | Path | None, fallback_strategy: str = FALLBACK_STRATEGY) -> str:
    """What answers by default, in words (``/healthz``, ``serve``), without loading anything."""
    if bundle_path:
        return f"bundle {bundle_path}"
    return f"{fallback_strategy} on each repository's labels (no trained bundle configured)"


class BundlePredictor:
    """Scores with labeler bundles (see the module docstring for which one)."""

    def __init__(self, bundle_path: str | Path | None = None, models_dir: str | Path | None = None,
                 fallback_strategy: str = FALLBACK_STRATEGY, cache_size: int = 16):
        self.bundle_path = Path(bundle_path) if bundle_path else None
        self.models_dir = Path(models_dir) if models_dir else None
        self.fallback_strategy = fallback_strategy
        self.cache_size = cache_size
        from labeler.lru import LRU

        # loaded bundles, the least recently used dropped first; one load per key at a time
        self._bundles: LRU[Any, tuple[Any, str]] = LRU(cache_size)

    def describe(self) -> str:
        return describe_model(self.bundle_path, self.fallback_strategy)

    def check(self) -> str | None:
        """Fail fast at startup: load the default bundle (raises :class:`PredictorUnavailable`
        when it is unusable); with no bundle, return a warning when the fallback strategy
        cannot be imported (issues would then fail until a bundle is configured)."""
        if self.bundle_path:
            self._bundle_for({}, None)
            return None
        try:
            from labeler.strategies import get_strategy

            get_strategy(self.fallback_strategy)
        except (KeyError, ImportError) as exc:
            return (f"no trained bundle (ISSUE_LABELER_BUNDLE) and the {self.fallback_strategy!r} strategy "
                    f"is not available ({exc}): issues will fail until one is configured")
        return None

    def _cached(self, key: Any, build) -> tuple[Any, str]:
        return self._bundles.get_or_create(key, build)

    def _load(self, path: Path) -> tuple[Any, str]:
        from labeler.bundle import Bundle
        from labeler.errors import BundleError

        try:
            bundle = Bundle.load(path)
        except BundleError as exc:
            raise PredictorUnavailable(str(exc)) from None
        m = bundle.manifest
        return bundle, f"{m.get('strategy', '?')} bundle {path.name} ({m.get('created', 'undated')})"

    def _bundle_for(self, repo_labels: Mapping[str, str | None], model: str | None) -> tuple[Any, str]:
        if model:
            if not self.models_dir:
                raise PredictorUnavailable(f"the repo config asks for model {model!r} but "
                                           "ISSUE_LABELER_MODELS_DIR is not set")
            path = self.models_dir / model
            return self._cached(("named", model), lambda: self._load(path))
        if self.bundle_path:
            return self._cached(("default",), lambda: self._load(self.bundle_path))
        labels = sorted(repo_labels)
        if not labels:
            raise PredictorUnavailable("the repository has no labels to choose from")
        descriptions = {l: (repo_labels[l] or "") for l in labels}
        key = ("fallback", tuple((l, descriptions[l]) for l in labels))

        def build():
            from labeler.bundle import Bundle

            try:
                bundle = Bundle.train(self.fallback_strategy, [], [], labels=labels, descriptions=descriptions)
            except (KeyError, ImportError) as exc:
                raise PredictorUnavailable(f"no trained bundle and no {self.fallback_strategy!r} strategy "
                                           f"available: {exc}") from None
            except Exception as exc:  # e.g. the embedded encoder cannot be loaded
                raise PredictorUnavailable(f"could not build the {self.fallback_strategy} fallback: {exc}") from None
            return bundle, f"{self.fallback_strategy} on {len(labels)} repository labels (no trained bundle)"

        return self._cached(key, build)

    def labels(self, repo_labels: Mapping[str, str | None], *, model: str | None = None) -> list[str]:
        """The labels the model answering for ``repo_labels`` and ``model`` scores (loads it)."""
        bundle, _ = self._bundle_for(repo_labels, model)
        return list(bundle.labels)

    def score(self, text: str, repo_labels: Mapping[str, str | None], *, model: str | None = None,
              precision: float | None = None, neighbours: bool = False) -> Scored:
        """Score ``text`` and let the bundle decide each label (``Bundle.classify``) for the
        ``precision`` asked (None: the bundle's own target)."""
        bundle, name = self._bundle_for(repo_labels, model)
        calls = bundle.classify([text], precision=precision)[0]  # every label, best first
        found: list[dict[str, Any]] = []
        if neighbours:
            try:
                found = [n.to_dict() for n in bundle.explain(text).neighbours]
            except Exception:  # an explanation is a nicety, never a failure
                log.exception("explain() failed")
        return Scored({c.label: float(c.score) for c in calls}, [c.label for c in calls if c.decision == APPLY],
                      name, found, decisions={c.label: c.decision for c in calls})

