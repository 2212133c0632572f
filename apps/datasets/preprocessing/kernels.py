"""Window kernels over one flat array holding every entity's series back to back.

Each output value at row t is computed from the rows t-L+1..t only, in the same order of operations
for every t (shifted elementwise adds, never running sums or recursive filters). That is what makes a
feature computed over a long training history bit-for-bit equal to the same feature computed at
serving time from just `history_rows` rows. Windows that reach back across an entity boundary are
blanked by `Frame.blank_warmup`, so nothing leaks from one ticker into the next.
"""
import numpy as np

DTYPE = np.float32
NAN = DTYPE(np.nan)


def shift(x: np.ndarray, k: int) -> np.ndarray:
    """x[t-k] at row t (k > 0: past; k < 0: future), NaN where there is none."""
    out = np.empty_like(x)
    if k == 0:
        out[:] = x
    elif k > 0:
        out[:k] = np.nan
        out[k:] = x[:-k] if k < len(x) else x[:0]
        if k >= len(x):
            out[:] = np.nan
    else:
        k = -k
        if k >= len(x):
            out[:] = np.nan
        else:
            out[:-k] = x[k:]
            out[-k:] = np.nan
    return out


def window_sum(x: np.ndarray, w: int) -> np.ndarray:
    out = x.copy()
    for i in range(1, w):
        if i >= len(x):
            break
        out[i:] += x[:-i]
    out[: w - 1] = np.nan
    return out


def window_mean(x: np.ndarray, w: int) -> np.ndarray:
    out = window_sum(x, w)
    out *= DTYPE(1.0 / w)
    return out


def window_std(x: np.ndarray, w: int, ddof: int = 1) -> np.ndarray:
    """Standard deviation of each window, from deviations to the window's last value (no cancellation
    between two large sums, which float32 could not afford for price-level series)."""
    s1 = np.zeros_like(x)
    s2 = np.zeros_like(x)
    tmp = np.empty_like(x)
    for i in range(1, w):
        if i >= len(x):
            break
        d = tmp[i:]
        np.subtract(x[:-i], x[i:], out=d)
        s1[i:] += d
        np.multiply(d, d, out=d)
        s2[i:] += d
    np.multiply(s1, s1, out=tmp)
    tmp *= DTYPE(1.0 / w)
    np.subtract(s2, tmp, out=s2)
    np.maximum(s2, 0, out=s2)
    s2 *= DTYPE(1.0 / (w - ddof))
    np.sqrt(s2, out=s2)
    # A NaN anywhere in the window propagates through the deviations, as pandas' rolling(min_periods=w).
    s2[: w - 1] = np.nan
    return s2


def window_min(x: np.ndarray, w: int) -> np.ndarray:
    out = x.copy()
    for i in range(1, w):
        if i >= len(x):
            break
        np.minimum(out[i:], x[:-i], out=out[i:])
    out[: w - 1] = np.nan
    return out


def window_max(x: np.ndarray, w: int) -> np.ndarray:
    out = x.copy()
    for i in range(1, w):
        if i >= len(x):
            break
        np.maximum(out[i:], x[:-i], out=out[i:])
    out[: w - 1] = np.nan
    return out


def ema_window(span: int) -> int:
    """Rows a truncated EMA of this span looks at: the weight left beyond 3 spans is below 0.3%."""
    return 3 * span


def truncated_ema(x: np.ndarray, span: int) -> np.ndarray:
    """Exponentially weighted mean over the last `ema_window(span)` rows with alpha = 2/(span+1),
    weights normalised over the window (pandas `ewm(span=span, adjust=True)` applied to exactly
    that window). A finite window keeps it reproducible from a bounded history."""
    length = ema_window(span)
    decay = 1.0 - 2.0 / (span + 1.0)
    weights = decay ** np.arange(length, dtype=np.float64)
    weights /= weights.sum()
    out = x * DTYPE(weights[0])
    tmp = np.empty_like(x)
    for i in range(1, length):
        if i >= len(x):
            break
        np.multiply(x[:-i], DTYPE(weights[i]), out=tmp[i:])
        out[i:] += tmp[i:]
    out[: length - 1] = np.nan
    return out
