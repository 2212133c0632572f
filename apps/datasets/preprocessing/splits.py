"""Train / validation / test splits.

Time series are cut at two points in time: every training row is older than every validation row,
which is older than every test row (no shuffling, no look-ahead). With a horizon target a row's
label comes from `horizon` rows later, so rows whose label lies beyond their split's cut-off are
purged, or the last training labels would be read from the validation period. Other data are split
at random, stratified by class for classification.
"""

from dataclasses import dataclass

import numpy as np

from .errors import DataError


@dataclass
class SplitRows:
    train: np.ndarray  # row indices, ascending
    val: np.ndarray
    test: np.ndarray


def check_fractions(fractions) -> tuple[float, float, float]:
    try:
        train, val, test = (float(f) for f in fractions)
    except (TypeError, ValueError):
        raise DataError("fractions must be three numbers (train, validation, test)") from None
    if min(train, val, test) <= 0 or abs(train + val + test - 1) > 1e-6:
        raise DataError(f"fractions must be positive and sum to 1, got {fractions!r}")
    return train, val, test


def time_ordered_split(
    *, candidates: np.ndarray, times: np.ndarray, fractions, label_times: np.ndarray | None = None
) -> SplitRows:
    """`candidates`: usable row indices; `times`: the ordering value of every row (int64);
    `label_times`: when each row's label becomes known (horizon targets), for purging."""
    train_f, val_f, _ = check_fractions(fractions)
    values = times[candidates]
    if len(candidates) < 3:
        raise DataError(f"only {len(candidates)} usable rows; a time-ordered split needs more")
    # Both cut-offs from one partial sort ("lower" quantiles: actual times of rows).
    kth = [int(np.floor(q * (len(values) - 1))) for q in (train_f, train_f + val_f)]
    partitioned = np.partition(values, kth)
    first_cut, second_cut = partitioned[kth[0]], partitioned[kth[1]]
    train = values <= first_cut
    val = (values > first_cut) & (values <= second_cut)
    test = values > second_cut
    if label_times is not None:
        labels = label_times[candidates]
        train &= labels <= first_cut
        val &= labels <= second_cut
    rows = SplitRows(candidates[train], candidates[val], candidates[test])
    _check_nonempty(rows, hint="the data cover too few distinct times for these fractions")
    return rows


def random_split(*, candidates: np.ndarray, fractions, seed: int, labels: np.ndarray | None = None) -> SplitRows:
    """Shuffled split; stratified by `labels` when every class has enough rows for it."""
    train_f, val_f, test_f = check_fractions(fractions)
    rng = np.random.default_rng(seed)
    n = len(candidates)
    if n < 3:
        raise DataError(f"only {n} usable rows; a split needs at least 3")
    parts = [[], [], []]
    if labels is not None:
        classes, counts = np.unique(labels[candidates], return_counts=True)
        stratify = len(classes) > 1 and counts.min() >= 3
    else:
        stratify = False
    groups = [candidates[labels[candidates] == c] for c in classes] if stratify else [candidates]
    for group in groups:
        group = rng.permutation(group)
        n_train = int(round(len(group) * train_f))
        n_val = int(round(len(group) * val_f))
        if stratify:
            # Each class keeps at least one row in every split.
            n_train = min(max(n_train, 1), len(group) - 2)
            n_val = min(max(n_val, 1), len(group) - n_train - 1)
        parts[0].append(group[:n_train])
        parts[1].append(group[n_train : n_train + n_val])
        parts[2].append(group[n_train + n_val :])
    rows = SplitRows(*(np.sort(np.concatenate(p)) for p in parts))
    _check_nonempty(rows, hint="add rows or change the fractions")
    return rows


def _check_nonempty(rows: SplitRows, *, hint: str):
    sizes = {"train": len(rows.train), "validation": len(rows.val), "test": len(rows.test)}
    empty = [name for name, size in sizes.items() if size == 0]
    if empty:
        raise DataError(f"the {', '.join(empty)} split would be empty ({sizes}); {hint}")
