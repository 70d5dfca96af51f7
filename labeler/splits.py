"""Train/validation/test splits and nested low-data training slices (shared/BENCHMARK.md).

* :func:`split_indices`: scikit-multilearn's ``iterative_train_test_split`` (stratified for
  multi-label data), 50% train, the rest 50/50 into validation and test. The seed permutes
  the rows first and seeds NumPy, so each seed gives a different, reproducible split.
* :func:`training_slices`: nested subsets of train of target sizes 8, 16, ... 512 and all,
  grown with the same iterative split, as chapter 9 of the book does; the actual sizes
  (which the stratification makes approximate) are what callers should report.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from skmultilearn.model_selection import iterative_train_test_split

SLICE_TARGETS = (8, 16, 32, 64, 128, 256, 512)


def _split(indices: np.ndarray, y: np.ndarray, test_size: float) -> tuple[np.ndarray, np.ndarray]:
    """(rest, taken) row indices; ``taken`` is about ``test_size`` of the rows."""
    x = indices.reshape(-1, 1)
    x_rest, _, x_taken, _ = iterative_train_test_split(x, y, test_size=test_size)
    return x_rest.ravel(), x_taken.ravel()


def split_indices(y: np.ndarray, seed: int = 0, train_fraction: float = 0.5) -> dict[str, np.ndarray]:
    """Row indices of ``train``, ``valid`` and ``test`` for a 0/1 label matrix ``y``."""
    n = y.shape[0]
    if n < 4:
        raise ValueError(f"need at least 4 labelled issues to split, got {n}")
    rng = np.random.RandomState(seed)
    order = rng.permutation(n)
    np.random.seed(seed)  # iterative stratification breaks ties with NumPy's global state
    rest, train = _split(order, y[order], test_size=train_fraction)
    valid, test = _split(rest, y[rest], test_size=0.5)
    return {"train": np.sort(train), "valid": np.sort(valid), "test": np.sort(test)}


def training_slices(y_train: np.ndarray, seed: int = 0,
                    targets: Sequence[int] = SLICE_TARGETS) -> dict[str, np.ndarray]:
    """Nested subsets of the training rows: ``{"8": idx, "16": idx, ..., "all": idx}``.

    Targets larger than train are skipped. Each slice contains the previous one."""
    n = y_train.shape[0]
    np.random.seed(seed)
    pool = np.arange(n)
    slices: dict[str, np.ndarray] = {}
    current = np.array([], dtype=int)
    last = 0
    for target in sorted(targets):
        if target >= n:
            break
        need = target - last
        if need >= len(pool):
            break
        pool, taken = _split(pool, y_train[pool], test_size=need / len(pool))
        current = np.sort(np.concatenate([current, taken]))
        slices[str(target)] = current
        last = len(current)
    slices["all"] = np.arange(n)
    return slices
