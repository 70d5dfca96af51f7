"""The bot's only door into ``labeler``: load a bundle, score an issue, ask for neighbours
(and the issue text and the command line, see below).

Which model answers for a repository:

1. the bundle named by the repo config's ``model:`` key, looked up under the models
   directory (``ISSUE_LABELER_MODELS_DIR``); only a name, never a path, so a repository
   cannot make the server load arbitrary files;
2. else the repository's ``active`` version in the model registry (``ISSUE_LABELER_REGISTRY``,
   :mod:`labeler.registry`), when it has one; see "Reloading" below;
3. else the default bundle (``ISSUE_LABELER_BUNDLE``);
4. else, with no trained bundle at all, the zero-shot strategy on the repository's own label
   names and descriptions (``Bundle.train("zero_shot", [], [], labels=..., descriptions=...)``),
   built once per label set and cached. A fresh install scores from the first issue (with
   no validation data behind it, its labels are suggestions: see ``precision`` in
   :mod:`bot.config`).

Reloading: a promotion (``issue-labeler models promote``, or the retraining Action's copy of
the registry) replaces the repository's ``pointers.json`` in one rename. The predictor reads
:meth:`Registry.token <labeler.registry.Registry.token>` (one ``stat``) for a repository at
most once per ``reload_seconds``; when it changed and names another active version, the
thread that noticed loads the new bundle while every other thread keeps scoring with the
old one, then swaps it in. A version that cannot be loaded (corrupt, half-copied) is
logged and the old one keeps serving; it is tried again at the next check. Each
:class:`Scored` names the version that scored it (``Scored.version``, ``OWNER/REPO@N``).

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
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Protocol

from labeler.data import issue_text  # the one text builder, for training and serving alike

__all__ = ["APPLY", "BELOW", "SUGGEST", "BundlePredictor", "FALLBACK_STRATEGY", "Predictor", "PredictorUnavailable",
           "Scored", "describe_model", "issue_text", "labeler_cli", "labeler_cli_context", "registry_status"]

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
    knows them. Without ``decisions``, the ``chosen`` labels are APPLY and the rest BELOW.
    ``version`` is the registry version that scored (``OWNER/REPO@N``), None for a bundle
    from outside the registry."""

    scores: dict[str, float]
    chosen: list[str]
    model: str
    neighbours: list[dict[str, Any]] = field(default_factory=list)
    decisions: dict[str, str] = field(default_factory=dict)
    version: str | None = None

    def __post_init__(self) -> None:
        if not self.decisions:
            chosen = set(self.chosen)
            self.decisions = {l: APPLY if l in chosen else BELOW for l in self.scores}
            self.decisions.update({l: APPLY for l in chosen})


class Predictor(Protocol):
    def score(self, text: str, repo_labels: Mapping[str, str | None], *, repo: str | None = None,
              model: str | None = None, precision: float | None = None, neighbours: bool = False) -> Scored: ...

    def labels(self, repo_labels: Mapping[str, str | None], *, repo: str | None = None,
               model: str | None = None) -> list[str]: ...

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


def describe_model(bundle_path: str | Path | None, fallback_strategy: str = FALLBACK_STRATEGY, *,
                   registry: str | Path | None = None, reload_seconds: float = 60.0) -> str:
    """What answers by default, in words (``/healthz``, ``serve``), without loading anything."""
    default = (f"bundle {bundle_path}" if bundle_path
               else f"{fallback_strategy} on each repository's labels (no trained bundle configured)")
    if registry:
        return (f"registry {registry} (each repository's active version, checked every {reload_seconds:g} s); "
                f"without one: {default}")
    return default


def registry_status(root: str | Path, loaded: Mapping[str, str | None] | None = None) -> dict[str, Any]:
    """``/healthz``'s view of a registry, read from its pointers and version records (no model
    is loaded): ``{"path", "repos": {OWNER/REPO: {"version", "name", "strategy", "created"}}}``,
    a repository without an active version as None and an unreadable one as ``{"error"}``.
    With ``loaded`` (repository -> the version this process scores it with, from
    :meth:`BundlePredictor.loaded_versions`) each repository also says ``"loaded"``: None
    until this process has scored an issue of it (or while its active version cannot be loaded)."""
    from labeler.errors import LabelerError
    from labeler.registry import Registry

    registry = Registry(root)
    repos: dict[str, Any] = {}
    for repo in registry.repos():
        try:
            version = registry.active(repo)
        except LabelerError as exc:
            repos[repo] = {"error": str(exc)}
            continue
        entry = None if version is None else {
            "version": version.number, "name": version.name, "strategy": version.info.get("strategy"),
            "created": version.info.get("created")}
        if loaded is not None:
            entry = {**(entry or {"version": None}), "loaded": loaded.get(repo)}
        repos[repo] = entry
    return {"path": str(root), "repos": repos}


@dataclass
class _Served:
    """What the predictor serves one repository from the registry: the pointers' ``token``
    when they were last read (None: read them again at the next check, after a failure), when
    it last checked, and the active version with its loaded bundle and display name (all None
    while the repository has no usable active version: the default model answers)."""

    token: str | None
    checked_at: float
    version: Any = None  # labeler.registry.Version
    bundle: Any = None
    name: str = ""


class BundlePredictor:
    """Scores with labeler bundles (see the module docstring for which one).

    ``registry``: a registry directory (``ISSUE_LABELER_REGISTRY``); ``reload_seconds``: how
    often, at most, a repository's pointers are checked for a new active version; ``clock``:
    seconds for that interval (tests pass a fake one)."""

    def __init__(self, bundle_path: str | Path | None = None, models_dir: str | Path | None = None,
                 fallback_strategy: str = FALLBACK_STRATEGY, cache_size: int = 16, *,
                 registry: str | Path | None = None, reload_seconds: float = 60.0, clock=time.monotonic):
        self.bundle_path = Path(bundle_path) if bundle_path else None
        self.models_dir = Path(models_dir) if models_dir else None
        self.fallback_strategy = fallback_strategy
        self.cache_size = cache_size
        from labeler.lru import LRU
        from labeler.registry import Registry

        # loaded bundles, the least recently used dropped first; one load per key at a time.
        # Registry versions are kept under (repo, number, created): a rollback to a version
        # still in the cache swaps without loading.
        self._bundles: LRU[Any, tuple[Any, str]] = LRU(cache_size)
        self.registry = Registry(registry) if registry else None
        self.reload_seconds = reload_seconds
        self.clock = clock
        self._served: dict[str, _Served] = {}  # per repository, see _from_registry
        self._check_locks: dict[str, threading.Lock] = {}  # one thread checks a repository at a time
        self._served_lock = threading.Lock()  # guards the two dicts above, held for a lookup only

    def describe(self) -> str:
        return describe_model(self.bundle_path, self.fallback_strategy,
                              registry=self.registry.root if self.registry else None,
                              reload_seconds=self.reload_seconds)

    def loaded_versions(self) -> dict[str, str | None]:
        """Repository -> the registry version this process scores it with (``OWNER/REPO@N``),
        None for a repository checked that has no usable active version."""
        with self._served_lock:
            return {repo: s.version.name if s.bundle is not None else None for repo, s in self._served.items()}

    def registry_status(self) -> dict[str, Any] | None:
        """:func:`registry_status` with this process's loaded versions; None without a registry."""
        if self.registry is None:
            return None
        return registry_status(self.registry.root, self.loaded_versions())

    def check(self) -> str | None:
        """Fail fast at startup: load the default bundle (raises :class:`PredictorUnavailable`
        when it is unusable); with no bundle, return a warning when the fallback strategy
        cannot be imported (issues would then fail until a bundle is configured), or when the
        registry directory does not exist (yet)."""
        warnings = []
        if self.registry is not None and not self.registry.root.is_dir():
            warnings.append(f"the model registry {self.registry.root} (ISSUE_LABELER_REGISTRY) does not exist: "
                            "every repository gets the default model until it does")
        if self.bundle_path:
            self._bundle_for(None, {}, None)
        else:
            try:
                from labeler.strategies import get_strategy

                get_strategy(self.fallback_strategy)
            except (KeyError, ImportError) as exc:
                warnings.append(f"no trained bundle (ISSUE_LABELER_BUNDLE) and the {self.fallback_strategy!r} "
                                f"strategy is not available ({exc}): issues will fail until one is configured")
        return "; ".join(warnings) or None

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

    # -- the registry ----------------------------------------------------------------------
    def _from_registry(self, repo: str) -> _Served:
        """What the registry serves ``repo`` with now. Checked at most once per
        ``reload_seconds``; while one thread checks (and perhaps loads a new version), the
        others go on with what was served before. Only a repository's very first delivery
        waits for its first check, as it has nothing to serve yet."""
        with self._served_lock:
            served = self._served.get(repo)
            check_lock = self._check_locks.setdefault(repo, threading.Lock())
        if served is not None and self.clock() - served.checked_at < self.reload_seconds:
            return served
        if served is None:
            check_lock.acquire()
        elif not check_lock.acquire(blocking=False):
            return served  # another thread is checking
        try:
            with self._served_lock:
                served = self._served.get(repo)  # the thread we waited for may have checked
            if served is None or self.clock() - served.checked_at >= self.reload_seconds:
                served = self._check(repo, served)
                with self._served_lock:
                    self._served[repo] = served
            return served
        finally:
            check_lock.release()

    def _check(self, repo: str, old: _Served | None) -> _Served:
        """Read ``repo``'s pointers if their token changed; load a newly active version. Never
        raises: a failure is logged and ``old`` keeps serving (its token forgotten, so the
        next check tries again: a registry being copied may be complete by then)."""
        from labeler.errors import LabelerError

        now = self.clock()
        try:
            token = self.registry.token(repo)
            if old is not None and old.token == token:
                return replace(old, checked_at=now)
            version = self.registry.active(repo)
            if version is None:
                return _Served(token, now)
            if old is not None and old.bundle is not None and old.version == version:
                return replace(old, token=token, checked_at=now)
            bundle, name = self._load_version(version)
            log.info("%s: now scoring with %s%s", repo, name,
                     f" (was {old.name})" if old is not None and old.bundle is not None else "")
            return _Served(token, now, version, bundle, name)
        except Exception as exc:  # never fail a delivery because a model is being swapped
            serving = old.name if old is not None and old.bundle is not None else "the default model"
            log.error("%s: the registry's active model cannot be used (%s); still scoring with %s, "
                      "trying again in %g s", repo, exc, serving, self.reload_seconds,
                      exc_info=not isinstance(exc, (LabelerError, PredictorUnavailable)))
            return replace(old, token=None, checked_at=now) if old is not None else _Served(None, now)

    def _load_version(self, version) -> tuple[Any, str]:
        """A registry version's bundle and display name (``OWNER/REPO@N (strategy, created)``),
        from the cache or loaded here, in the checking thread, outside the cache's lock."""
        created = version.info.get("created")
        key = ("registry", version.repo, version.number, created)
        hit = self._bundles.get(key)
        if hit is not None:
            return hit
        bundle = version.load()  # BundleError for a corrupt or half-copied version
        m = bundle.manifest
        name = f"{version.name} ({m.get('strategy', '?')}, {created or m.get('created') or 'undated'})"
        return self._bundles.get_or_create(key, lambda: (bundle, name))

    # -- which model --------------------------------------------------------------------------
    def _bundle_for(self, repo: str | None, repo_labels: Mapping[str, str | None],
                    model: str | None) -> tuple[Any, str, str | None]:
        """(bundle, display name, registry version or None) for the module docstring's order."""
        if model:
            if not self.models_dir:
                raise PredictorUnavailable(f"the repo config asks for model {model!r} but "
                                           "ISSUE_LABELER_MODELS_DIR is not set")
            path = self.models_dir / model
            return (*self._cached(("named", model), lambda: self._load(path)), None)
        if self.registry is not None and repo:
            served = self._from_registry(repo)
            if served.bundle is not None:
                return served.bundle, served.name, served.version.name
        if self.bundle_path:
            return (*self._cached(("default",), lambda: self._load(self.bundle_path)), None)
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

        return (*self._cached(key, build), None)

    def labels(self, repo_labels: Mapping[str, str | None], *, repo: str | None = None,
               model: str | None = None) -> list[str]:
        """The labels the model answering for ``repo`` / ``repo_labels`` / ``model`` scores (loads it)."""
        bundle, _, _ = self._bundle_for(repo, repo_labels, model)
        return list(bundle.labels)

    def score(self, text: str, repo_labels: Mapping[str, str | None], *, repo: str | None = None,
              model: str | None = None, precision: float | None = None, neighbours: bool = False) -> Scored:
        """Score ``text`` for ``repo`` (``OWNER/REPO``: picks its registry version) and let the
        bundle decide each label (``Bundle.classify``) for the ``precision`` asked (None: the
        bundle's own target)."""
        bundle, name, version = self._bundle_for(repo, repo_labels, model)
        calls = bundle.classify([text], precision=precision)[0]  # every label, best first
        found: list[dict[str, Any]] = []
        if neighbours:
            try:
                found = [n.to_dict() for n in bundle.explain(text).neighbours]
            except Exception:  # an explanation is a nicety, never a failure
                log.exception("explain() failed")
        return Scored({c.label: float(c.score) for c in calls}, [c.label for c in calls if c.decision == APPLY],
                      name, found, decisions={c.label: c.decision for c in calls}, version=version)

