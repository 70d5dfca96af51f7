"""The one interface every labelling strategy implements.

A strategy *scores*: ``predict_proba`` returns a matrix of shape ``(n_texts, n_labels)`` with a
score in [0, 1] per label, in the order of ``self.labels``. Turning scores into label sets is
the job of :mod:`labeler.decision`, so every strategy gets the same decision rules (top-k,
one threshold, per-label thresholds tuned on validation).

Persistence: ``save(directory)`` writes only non-executable formats (JSON, ``.npy``/``.npz``
without object arrays, safetensors, FAISS index files) and ``load(directory)`` reads them
back. Nothing is pickled, so loading a bundle cannot run code.

Parameters
----------
A strategy declares its hyper-parameters as a pydantic model in the class attribute
``Params`` (a subclass of :class:`StrategyParams`: unknown keys are errors, and every field
has a default and a ``description=``)::

    class NaiveBayes(Strategy):
        name = "naive_bayes"

        class Params(StrategyParams):
            alpha: float = Field(1.0, ge=0, description="MultinomialNB additive smoothing")

``Strategy.__init__(labels, descriptions, **params)`` validates ``params`` through it, so a
misspelt key or a bad value fails when the strategy is built, before any training, with a
:class:`~labeler.errors.ParameterError` of one line naming the strategy and the key
(``naive_bayes: unknown parameter 'alhpa' (did you mean 'alpha'?)``). ``self.params`` is then
the validated parameters as a plain JSON-able dict with every default filled in: that dict is
what bundles store and what ``load`` passes back to the constructor.
:meth:`Strategy.check_params` validates without building a strategy (the CLI does that before
reading any data) and :func:`describe_params` lists the fields for ``issue-labeler strategies
--verbose``. Pydantic checks types and ranges (``Field(ge=1)``, ``Literal[...]``); constraints
that span fields go in a ``model_validator``. A strategy with no parameters leaves ``Params``
as :class:`StrategyParams` itself.
"""

from __future__ import annotations

import difflib
import json
import logging
import types
import typing
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping, Sequence

import numpy as np
import pydantic
from pydantic import ConfigDict

from labeler.data import binarize
from labeler.errors import ParameterError

log = logging.getLogger(__name__)

LabelSets = Sequence[Iterable[str]]
#: validation data passed to ``fit``: (texts, label_sets)
Labelled = tuple[Sequence[str], LabelSets]
#: one JSON-serialisable record per training text describing its issue, passed to ``fit``:
#: ``{"number": 12, "id": 1234, "title": "..."}`` (:meth:`labeler.data.Issue.metadata`;
#: other keys, e.g. a ``url``, are kept)
Metadata = Sequence[dict[str, Any]]


@dataclass
class Neighbour:
    """A training issue close to the explained one (knn's "similar issues"): what the training
    metadata said about it (``id``, ``number``, ``title``, anything else in ``extra``), its
    labels, and its cosine similarity to the explained issue."""

    id: int | str | None
    title: str
    labels: list[str]
    similarity: float
    number: int | None = None
    #: other keys of the issue's metadata record (e.g. ``url``)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: dict[str, Any], similarity: float) -> "Neighbour":
        known = {"id", "number", "title", "labels", "similarity"}
        return cls(id=record.get("id"), title=str(record.get("title") or ""), labels=list(record.get("labels") or []),
                   similarity=float(similarity), number=record.get("number"),
                   extra={k: v for k, v in record.items() if k not in known})

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: ``id``, ``number`` (when known), ``title``, ``labels``, ``similarity`` and
        the extra metadata keys."""
        out: dict[str, Any] = {**self.extra, "id": self.id}
        if self.number is not None:
            out["number"] = self.number
        out.update(title=self.title, labels=list(self.labels), similarity=self.similarity)
        return out


@dataclass
class Explanation:
    """What :meth:`Strategy.explain` returns: the issue's score per label, the training issues
    that decided it (empty for strategies that do not work by neighbours), and strategy-specific
    JSON-able ``details`` (knn: ``votes``, ``k``, ``m``; zero_shot: ``variant``, ``hypotheses``)."""

    scores: dict[str, float]
    neighbours: list[Neighbour] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: ``{"scores": ..., "neighbours": [...], **details}`` (what
        ``issue-labeler predict --explain --json`` prints)."""
        return {"scores": dict(self.scores), **self.details, "neighbours": [n.to_dict() for n in self.neighbours]}


class StrategyParams(pydantic.BaseModel):
    """Base of every strategy's ``Params``: unknown keys are rejected. Subclasses give every
    field a default and a ``description=`` (checked when the strategy class is defined)."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class ParamInfo:
    """One parameter as ``issue-labeler strategies --verbose`` shows it."""

    name: str
    type: str
    default: Any
    description: str


class Strategy(ABC):
    """Base class. Subclasses set ``name`` and ``Params`` and implement ``fit``,
    ``predict_proba``, ``_save`` and ``_load``.

    ``labels`` is the ordered label set; ``descriptions`` maps a label to a description
    (GitHub labels have one; zero-shot strategies use them). Keyword ``params`` are the
    strategy's hyper-parameters, validated through ``Params`` (see the module docstring);
    ``self.params`` holds them as a JSON-able dict with the defaults filled in, which is
    stored in the bundle manifest and passed back to the constructor on load.
    """

    name: ClassVar[str] = ""
    #: the strategy's parameters: a :class:`StrategyParams` subclass
    Params: ClassVar[type[pydantic.BaseModel]] = StrategyParams
    #: Whether ``fit`` needs labelled issues. False for strategies that can score after
    #: ``fit([], [])`` (zero-shot: label names and descriptions are enough). Their raw scores
    #: are similarities, not probabilities, so with no validation data to tune a rule the
    #: bundle's default decision is top-1 instead of a 0.5 threshold
    #: (:func:`labeler.bundle.default_rule`).
    needs_training: ClassVar[bool] = True
    #: Parameters added after models were saved without them, with the value those models
    #: were trained under, where that is not the parameter's default: loading such a model
    #: uses this value, so a new default never silently changes an old model.
    SAVED_WITHOUT: ClassVar[dict[str, Any]] = {}

    #: ``(scores, label_sets)`` of training issues the strategy held out for itself when fitted
    #: without a validation set (``auto`` does); the bundle tunes its decision rule on them
    held_out: tuple[np.ndarray, LabelSets] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _check_params_class(cls)

    def __init__(self, labels: Sequence[str], descriptions: dict[str, str] | None = None, **params: Any):
        labels = list(labels)
        if not labels:
            raise ValueError("a strategy needs at least one label")
        if len(set(labels)) != len(labels):
            raise ValueError(f"duplicate labels in {labels}")
        self.labels: list[str] = labels
        self.descriptions: dict[str, str] = dict(descriptions or {})
        #: the validated parameters, every default filled in (JSON-able)
        self.params: dict[str, Any] = self.check_params(params)
        #: anything learnt during fit that the manifest should show (e.g. tuned k and m)
        self.fitted_info: dict[str, Any] = {}

    # -- parameters -----------------------------------------------------------------------
    @classmethod
    def check_params(cls, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``params`` validated through ``cls.Params``: a JSON-able dict with every default
        filled in. Raises :class:`~labeler.errors.ParameterError` (one line, naming the
        strategy and the bad key) for an unknown key or a bad value."""
        try:
            return cls.Params.model_validate(dict(params or {})).model_dump(mode="json")
        except pydantic.ValidationError as exc:
            raise ParameterError(_one_line(cls.name or cls.__name__, cls.Params, exc)) from None

    # -- training and scoring -------------------------------------------------------------
    @abstractmethod
    def fit(self, texts: Sequence[str], label_sets: LabelSets, *, valid: Labelled | None = None,
            unlabelled: Sequence[str] | None = None, metadata: Metadata | None = None) -> "Strategy":
        """Learn from labelled texts; ``valid`` may be used for tuning only, ``unlabelled``
        issues for anything that needs no labels. ``metadata`` is one record per text
        (:data:`Metadata`) for strategies that show training issues in :meth:`explain`
        (knn's similar issues); the others accept and ignore it."""

    @abstractmethod
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Scores in [0, 1], shape ``(len(texts), len(self.labels))``."""

    def validation_scores(self, texts: Sequence[str]) -> np.ndarray:
        """Scores of the validation texts that decision rules are tuned on. The same as
        :meth:`predict_proba`, except for strategies that fitted part of themselves on the
        validation set (``auto``'s stacking returns out-of-fold scores)."""
        return self.predict_proba(texts)

    def out_of_fold(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(scores, 0/1 labels)`` of the training issues, each scored by a model fitted
        without it (cross-fitting), for strategies cheap enough to refit a few times
        (``linear``); ``None`` for the others. The bundle tunes the decision rule on these
        together with the validation scores: a label seen a handful of times in validation
        gets a threshold from several times as many positives. Called once, right after
        ``fit``; a strategy may free what it kept for it afterwards."""
        return None

    def explain(self, text: str) -> Explanation:
        """Why the strategy scored ``text`` as it did; strategies that can say more override
        this (kNN fills in the neighbours)."""
        scores = self.predict_proba([text])[0]
        return Explanation(scores=dict(zip(self.labels, map(float, scores))))

    # -- helpers shared by subclasses -----------------------------------------------------
    def binarize(self, label_sets: LabelSets) -> np.ndarray:
        """Label sets to a 0/1 matrix over ``self.labels`` (unknown labels are ignored)."""
        return binarize(label_sets, self.labels)

    # -- persistence ----------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"strategy": self.name, "labels": self.labels, "descriptions": self.descriptions,
                "params": self.params, "fitted_info": self.fitted_info}
        (directory / "strategy.json").write_text(json.dumps(meta, indent=2, default=json_default))
        self._save(directory)

    @classmethod
    def load(cls, directory: str | Path) -> "Strategy":
        directory = Path(directory)
        meta = json.loads((directory / "strategy.json").read_text())
        if meta.get("strategy") != cls.name:
            raise ValueError(f"{directory} holds a {meta.get('strategy')!r} model, not {cls.name!r}")
        params = dict(meta.get("params", {}))
        unknown = sorted(set(params) - set(cls.Params.model_fields))
        if unknown:  # e.g. a parameter a newer version dropped: it cannot change the learnt state
            log.warning("%s: ignoring unknown parameters %s stored in %s", cls.name, ", ".join(unknown), directory)
            params = {k: v for k, v in params.items() if k not in unknown}
        params = {**{k: v for k, v in cls.SAVED_WITHOUT.items() if k not in params}, **params}
        obj = cls(meta["labels"], meta.get("descriptions"), **params)
        obj.fitted_info = meta.get("fitted_info", {})
        obj._load(directory)
        return obj

    @abstractmethod
    def _save(self, directory: Path) -> None:
        """Write the learnt state (no pickles)."""

    @abstractmethod
    def _load(self, directory: Path) -> None:
        """Read the learnt state written by ``_save``."""


def describe_params(strategy: type[Strategy]) -> list[ParamInfo]:
    """The parameters of a strategy class, in declaration order, for help texts."""
    return [ParamInfo(name, type_name(field.annotation, field.metadata),
                      field.get_default(call_default_factory=True), field.description or "")
            for name, field in strategy.Params.model_fields.items()]


def parse_params(items: Iterable[str] | None) -> dict[str, Any]:
    """``["alpha=0.5", "model=/path"]`` (the CLI's ``-p KEY=VALUE``) to a dict; values are read
    as JSON when they parse as JSON, else kept as strings. Raises
    :class:`~labeler.errors.ParameterError` for an item without ``=`` or a key."""
    params: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ParameterError(f"a parameter takes KEY=VALUE, got {item!r}")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def type_name(annotation: Any, metadata: Sequence[Any] = ()) -> str:
    """A short, readable name of a type annotation and its constraints: ``int >= 1 | None``,
    ``"flat" | "hnsw"``."""
    bounds = [f"{symbol} {getattr(m, attr)}" for m in metadata
              for attr, symbol in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))
              if getattr(m, attr, None) is not None]
    if bounds:
        return f"{type_name(annotation)} {', '.join(bounds)}"
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *extra = typing.get_args(annotation)
        return type_name(base, [m for item in extra for m in getattr(item, "metadata", [item])])
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def _one_line(strategy: str, params_class: type[pydantic.BaseModel], exc: pydantic.ValidationError) -> str:
    """A pydantic ValidationError as one line naming the strategy and each bad key."""
    known = list(params_class.model_fields)
    unknown: list[str] = []
    bad: dict[str, tuple[list[str], Any]] = {}  # key -> (messages, input); a union gives one per member
    for error in exc.errors():
        key = str(error["loc"][0]) if error["loc"] else "?"
        if error["type"] == "extra_forbidden":
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known) or 'none'}"
            unknown.append(f"unknown parameter {key!r} ({hint})")
        else:
            message = error["msg"].removeprefix("Value error, ").replace("\n", " ")
            messages, _ = bad.setdefault(key, ([], error.get("input")))
            if message not in messages:
                messages.append(message)
    problems = unknown + [f"parameter {key!r}: {', or '.join(messages)} (got {value!r})"
                          for key, (messages, value) in bad.items()]
    return f"{strategy}: " + "; ".join(problems)


def _check_params_class(cls: type) -> None:
    """Catch a malformed ``Params`` when the strategy class is defined, not when a user runs it."""
    params = cls.Params
    if not (isinstance(params, type) and issubclass(params, pydantic.BaseModel)):
        raise TypeError(f"{cls.__name__}.Params must be a pydantic model class (subclass StrategyParams)")
    if params.model_config.get("extra") != "forbid":
        raise TypeError(f"{cls.__name__}.Params must forbid unknown keys (subclass StrategyParams)")
    for name, field in params.model_fields.items():
        if field.is_required():
            raise TypeError(f"{cls.__name__}.Params.{name} needs a default")
        if not field.description:
            raise TypeError(f"{cls.__name__}.Params.{name} needs a description=")


def json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
