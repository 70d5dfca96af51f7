"""Train/validation/test splits and nested low-data training slices (shared/BENCHMARK.md).

* :func:`split_indices`: scikit-multilearn's ``iterative_train_test_split`` (stratified for
  multi-label data); by default 50% train, the rest 50/50 into validation and test, other
  validation/test sizes as fractions or counts (0: no such part). The seed permutes the rows
  first and seeds NumPy, so each seed gives a different, reproducible split.
* :func:`time_split_indices`: the time-ordered variant: the oldest issues train, the next
  ones validate, the newest ones test (what a repository sees: a model of the past judged
  on the issues that come after it).
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


def part_size(size: float | int, n: int, name: str = "size") -> int:
    """Rows of a part of ``n`` rows: ``size`` is a fraction (0 <= size < 1) or a count (an
    integer >= 1). Raises :class:`ValueError` for anything else."""
    if isinstance(size, bool) or not isinstance(size, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a fraction or a count, got {size!r}")
    if size < 0:
        raise ValueError(f"{name} must not be negative, got {size}")
    if size < 1:
        return int(round(size * n))
    if float(size) != int(size):
        raise ValueError(f"{name} is a fraction (below 1) or a whole count, got {size}")
    return int(size)


def _exact(first: np.ndarray, second: np.ndarray, n_first: int,
           rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    """Move rows at random between two parts until ``first`` has ``n_first`` rows."""
    if len(first) > n_first:
        moved = rng.choice(len(first), len(first) - n_first, replace=False)
        keep = np.setdiff1d(np.arange(len(first)), moved)
        return first[keep], np.concatenate([second, first[moved]])
    if len(first) < n_first:
        moved = rng.choice(len(second), n_first - len(first), replace=False)
        keep = np.setdiff1d(np.arange(len(second)), moved)
        return np.concatenate([first, second[moved]]), second[keep]
    return first, second


def split_indices(y: np.ndarray, seed: int = 0, valid: float | int = 0.25,
                  test: float | int = 0.25) -> dict[str, np.ndarray]:
    """Row indices of ``train``, ``valid`` and ``test`` for a 0/1 label matrix ``y``.

    ``valid`` and ``test`` are fractions of the rows (below 1, approximate as stratification
    makes them) or counts (exact: stratification's surplus or shortfall of a part is moved
    at random); train is the rest.
    A part of size 0 is empty (``test=0`` when the test set comes from elsewhere). The
    defaults (25%/25%) give the same splits as the benchmark has always used: train is split
    off first, then the rest is divided between validation and test."""
    n = y.shape[0]
    if n < 4:
        raise ValueError(f"need at least 4 labelled issues to split, got {n}")
    n_valid, n_test = part_size(valid, n, "valid"), part_size(test, n, "test")
    if n_valid + n_test >= n:
        raise ValueError(f"valid ({n_valid}) and test ({n_test}) leave no training issues out of {n}")
    rng = np.random.RandomState(seed)
    order = rng.permutation(n)
    np.random.seed(seed)  # iterative stratification breaks ties with NumPy's global state
    empty = np.array([], dtype=int)
    held = n_valid + n_test
    if held == 0:
        return {"train": np.arange(n), "valid": empty, "test": empty}
    # fractions as given when both are fractions, so the defaults reproduce the old 0.5 / 0.5
    fractions = all(isinstance(s, (float, np.floating)) and s < 1 for s in (valid, test))
    held_fraction = (valid + test) if fractions else held / n
    rest, train = _split(order, y[order], test_size=1.0 - held_fraction)
    if not fractions:  # a count is exact: stratification's surplus or shortfall moves at random
        rest, train = _exact(rest, train, held, rng)
    if n_valid == 0:
        return {"train": np.sort(train), "valid": empty, "test": np.sort(rest)}
    if n_test == 0:
        return {"train": np.sort(train), "valid": np.sort(rest), "test": empty}
    test_share = test / (valid + test) if fractions else n_test / held
    valid_idx, test_idx = _split(rest, y[rest], test_size=test_share)
    if not fractions:
        valid_idx, test_idx = _exact(valid_idx, test_idx, n_valid, rng)
    return {"train": np.sort(train), "valid": np.sort(valid_idx), "test": np.sort(test_idx)}


def time_split_indices(created_at: Sequence[str | None], valid: float | int = 0.25,
                       test: float | int = 0.25) -> dict[str, np.ndarray]:
    """Row indices of ``train`` (oldest), ``valid`` (next) and ``test`` (newest) by
    ``created_at`` (ISO 8601 strings, compared as text: GitHub's ``...Z`` form sorts in time
    order); ties keep the row order. Sizes as in :func:`split_indices`. Raises
    :class:`ValueError` when a row has no ``created_at``."""
    missing = [i for i, t in enumerate(created_at) if not t]
    if missing:
        raise ValueError(f"{len(missing)} issue(s) have no created_at (e.g. row {missing[0]}): "
                         "a time-ordered split needs it on every issue")
    n = len(created_at)
    n_valid, n_test = part_size(valid, n, "valid"), part_size(test, n, "test")
    if n_valid + n_test >= n:
        raise ValueError(f"valid ({n_valid}) and test ({n_test}) leave no training issues out of {n}")
    order = np.array(sorted(range(n), key=lambda i: created_at[i]), dtype=int)
    n_train = n - n_valid - n_test
    return {"train": order[:n_train], "valid": order[n_train:n_train + n_valid], "test": order[n_train + n_valid:]}


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
