"""Gathering rows by index. The rows of a time-ordered split are long runs of consecutive frame rows
(each entity's stretch of time), and copying slices beats an index gather, which reads an index for
every value and cannot stream."""

import numpy as np

MIN_MEAN_RUN = 64  # below this many rows per run, the Python loop over runs costs more than it saves


def contiguous_runs(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(first row, length) of each run of consecutive values in `rows`, or None when the runs are too
    short on average for slice copies to pay."""
    if len(rows) == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    breaks = np.flatnonzero(np.diff(rows) != 1)
    if (len(breaks) + 1) * MIN_MEAN_RUN > len(rows):
        return None
    bounds = np.empty(len(breaks) + 2, dtype=np.int64)
    bounds[0], bounds[-1] = 0, len(rows)
    bounds[1:-1] = breaks + 1
    return rows[bounds[:-1]], np.diff(bounds)


def take_rows(values: np.ndarray, rows: np.ndarray, *, runs=None, out: np.ndarray | None = None) -> np.ndarray:
    """values[rows] for a 1-D array, written into `out` when given; `runs` is contiguous_runs(rows)."""
    if out is None:
        out = np.empty(len(rows), dtype=values.dtype)
    if runs is None:
        np.take(values, rows, out=out)
        return out
    at = 0
    for start, length in zip(runs[0].tolist(), runs[1].tolist()):
        out[at : at + length] = values[start : start + length]
        at += length
    return out
