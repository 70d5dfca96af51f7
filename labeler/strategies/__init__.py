"""Strategy registry: a dict from name to class (see mozilla/bugbug's ``bugbug/models``).

Strategies register themselves with :func:`register`; a strategy whose module needs heavy
imports (torch, transformers, faiss) is imported lazily, the first time it is asked for, so
``import labeler`` stays fast and naive Bayes works without them.
"""

from __future__ import annotations

import importlib

from labeler.strategies.base import Explanation, Neighbour, Strategy, StrategyParams

REGISTRY: dict[str, type[Strategy]] = {}

#: strategy name -> module that defines (and registers) it
_MODULES = {
    "naive_bayes": "labeler.strategies.naive_bayes",
    "linear": "labeler.strategies.linear",
    "knn": "labeler.strategies.knn",
    "zero_shot": "labeler.strategies.zero_shot",
    "finetune": "labeler.strategies.finetune",
    "setfit": "labeler.strategies.setfit_strategy",
    "auto": "labeler.strategies.auto",
}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: add a strategy to the registry under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    REGISTRY[cls.name] = cls
    return cls


def available() -> list[str]:
    """Names of all strategies the registry knows (whether or not imported yet)."""
    return sorted(set(_MODULES) | set(REGISTRY))


def get_strategy(name: str) -> type[Strategy]:
    """The class registered as ``name``; raises ``KeyError`` with the known names."""
    if name not in REGISTRY and name in _MODULES:
        importlib.import_module(_MODULES[name])
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown strategy {name!r}; known: {', '.join(available())}") from None


__all__ = ["REGISTRY", "Explanation", "Neighbour", "Strategy", "StrategyParams", "available", "get_strategy",
           "register"]
