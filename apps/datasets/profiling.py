"""Column profiles shown with a version: summary statistics and a histogram per numeric column."""

import math

import numpy as np
import pandas as pd

HISTOGRAM_BINS = 20
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _number(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def profile_of(frame: pd.DataFrame, *, time_column: str = "") -> dict:
    """{column: {...}}: numeric columns get mean/std/min/max/quantiles/histogram, the others
    distinct counts and their most frequent values (dates, and the time column: first and last)."""
    out = {}
    for name in frame.columns:
        series = frame[name]
        if name == time_column and not pd.api.types.is_datetime64_any_dtype(series.dtype):
            from .preprocessing.frame import to_datetime_ns

            series = pd.Series(to_datetime_ns(series, name=name))
        if pd.api.types.is_bool_dtype(series.dtype):
            series = series.astype("float64")
        if pd.api.types.is_numeric_dtype(series.dtype):
            out[str(name)] = _numeric_profile(series)
        elif pd.api.types.is_datetime64_any_dtype(series.dtype):
            present = series.dropna()
            out[str(name)] = {
                "kind": "datetime",
                "count": int(len(present)),
                "nulls": int(series.isna().sum()),
                "distinct": int(present.nunique()),
                "min": present.min().isoformat() if len(present) else None,
                "max": present.max().isoformat() if len(present) else None,
            }
        else:
            counts = series.value_counts(dropna=True)
            out[str(name)] = {
                "kind": "text",
                "count": int(series.notna().sum()),
                "nulls": int(series.isna().sum()),
                "distinct": int(len(counts)),
                "top": [{"value": str(v), "count": int(c)} for v, c in counts.head(10).items()],
            }
    return out


def _numeric_profile(series: pd.Series) -> dict:
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    values = values[np.isfinite(values)]
    profile = {"kind": "numeric", "count": int(len(values)), "nulls": int(series.isna().sum())}
    if not len(values):
        return profile | {"mean": None, "std": None, "min": None, "max": None, "quantiles": {}, "histogram": None}
    low, high = float(values.min()), float(values.max())
    counts, edges = np.histogram(
        values, bins=HISTOGRAM_BINS, range=(low, high) if high > low else (low - 0.5, low + 0.5)
    )
    quantiles = np.quantile(values, QUANTILES)
    return profile | {
        "mean": _number(values.mean()),
        "std": _number(values.std(ddof=1)) if len(values) > 1 else 0.0,
        "min": _number(low),
        "max": _number(high),
        "quantiles": {f"p{int(q * 100)}": _number(v) for q, v in zip(QUANTILES, quantiles)},
        "histogram": {"edges": [_number(e) for e in edges], "counts": [int(c) for c in counts]},
    }
