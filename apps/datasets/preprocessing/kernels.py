"""Window kernels over one flat array holding every entity's series back to back.

Each output value at row t is computed from the rows t-L+1..t only, by the same expression for every
t (a fixed tree of elementwise operations on shifted arrays; never running sums or recursive filters,
whose rounding would depend on everything before). That is what makes a feature computed over a long
training history bit-for-bit equal to the same feature computed at serving time from just
`history_rows` rows. Windows reaching back across an entity boundary are blanked by
`Frame.blank_warmup`, so nothing leaks from one ticker into the next.

Windows are combined by doubling: the sum over 2m rows is the sum over m rows plus the sum over the m
rows before, so a window of w rows costs about log2(w) passes over the data instead of w.
"""

import numpy as np

DTYPE = np.float32


def shift(x: np.ndarray, k: int) -> np.ndarray:
    """x[t-k] at row t (k > 0: past; k < 0: future), NaN where there is none."""
    out = np.empty_like(x)
    n = len(x)
    if k == 0:
        out[:] = x
    elif abs(k) >= n:
        out[:] = np.nan
    elif k > 0:
        out[:k] = np.nan
        out[k:] = x[:-k]
    else:
        out[:k] = x[-k:]
        out[k:] = np.nan
    return out


def _combine_add(a, b, size, decay, out):
    """out = a + decay**size * b; `out` must not share memory with `a` or `b` when weighted."""
    if decay is None:
        np.add(a, b, out=out)
    else:
        np.multiply(b, out.dtype.type(decay**size), out=out)
        out += a


def _combine_min(a, b, size, decay, out):
    np.minimum(a, b, out=out)


def _combine_max(a, b, size, decay, out):
    np.maximum(a, b, out=out)


def _window(x: np.ndarray, w: int, combine, decay: float | None = None, consume: bool = False) -> np.ndarray:
    """Reduce the last `w` rows at every row: out[t] = x[t] (+) d*x[t-1] (+) d^2*x[t-2] ... over w rows,
    built by doubling; NaN for t < w-1. Intermediate levels reuse buffers: fresh memory has to be
    faulted in page by page, which costs more than the arithmetic. `consume`: x is a scratch array
    of the caller's that may be overwritten (and returned)."""
    n = len(x)
    levels = {}
    current, size, spare = x, 1, None
    while size * 2 <= w:
        keep = bool(w & size)
        if keep:
            levels[size] = current
        following = spare if spare is not None else np.empty_like(x)
        following[:size] = np.nan
        if size < n:
            combine(current[size:], current[:-size], size, decay, following[size:])
        else:
            following[:] = np.nan
        spare = None if keep or (current is x and not consume) else current
        current, size = following, size * 2
    if w & size and size not in levels:
        levels[size] = current
    # Now `current` covers `size` rows (the top bit of w); add the lower bits further back.
    result = current.copy() if current is x and not consume else current
    offset = size
    for bit in sorted(levels, reverse=True):
        if bit == size:
            continue
        part = levels[bit]
        if offset < n:
            if decay is None:
                combine(result[offset:], part[:-offset], offset, decay, result[offset:])
            else:
                scratch = (spare if spare is not None else np.empty_like(x))[: n - offset]
                combine(result[offset:], part[:-offset], offset, decay, scratch)
                result[offset:] = scratch
        result[: min(offset, n)] = np.nan
        offset += bit
    result[: min(w - 1, n)] = np.nan
    return result


def window_sum(x: np.ndarray, w: int, consume: bool = False) -> np.ndarray:
    return _window(x, w, _combine_add, consume=consume)


def window_sums(x: np.ndarray, windows, consume: bool = False) -> dict[int, np.ndarray]:
    """window_sum(x, w) for each w, bit for bit, sharing the doubling levels between windows (windows
    5 and 20 both use the 4-row sums). Each sum is the same tree as window_sum's: its power-of-two
    levels from the largest down, the largest level first. `consume`: x may be overwritten."""
    n = len(x)
    windows = sorted(set(int(w) for w in windows))
    bits = {w: [1 << b for b in range(w.bit_length() - 1, -1, -1) if w >> b & 1] for w in windows}
    uses: dict[int, int] = {}
    for w in windows:
        for bit in bits[w]:
            uses[bit] = uses.get(bit, 0) + 1
    largest = max(uses)
    levels = {1: x} if 1 in uses else {}
    current, size, spare = x, 1, None
    while size < largest:
        following = spare if spare is not None else np.empty_like(x)
        following[:size] = np.nan
        if size < n:
            np.add(current[size:], current[:-size], out=following[size:])
        else:
            following[:] = np.nan
        spare = None if size in levels or (current is x and not consume) else current
        current, size = following, size * 2
        if size in uses:
            levels[size] = current
    out = {}
    for w in windows:
        top, lower = bits[w][0], bits[w][1:]
        uses[top] -= 1
        owned = uses[top] == 0 and (levels[top] is not x or consume)
        result = levels.pop(top) if owned else levels[top]
        offset = top
        for bit in lower:
            part = levels[bit]
            target = result if owned else np.empty_like(x)
            if offset < n:
                np.add(result[offset:], part[:-offset], out=target[offset:])
            target[: min(offset, n)] = np.nan
            result, owned = target, True
            offset += bit
            uses[bit] -= 1
            if uses[bit] == 0:
                levels.pop(bit)
        if not owned:
            result = result.copy()
        result[: min(w - 1, n)] = np.nan
        out[w] = result
    return out


def window_mean(x: np.ndarray, w: int) -> np.ndarray:
    out = window_sum(x, w)
    out *= out.dtype.type(1.0 / w)
    return out


def window_mean_std(x: np.ndarray, w: int, ddof: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each window, from sums of values and of squares taken in
    float64, where the cancellation between the two sums costs nothing at float32 precision."""
    return window_means_stds(x, [w], ddof)[w]


def window_means_stds(x: np.ndarray, windows, ddof: int = 1) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """window_mean_std(x, w, ddof) for each w, sharing the work on the column between windows."""
    wide = x.astype(np.float64)
    totals = window_sums(wide, windows)
    np.multiply(wide, wide, out=wide)
    all_squares = window_sums(wide, windows, consume=True)
    del wide
    out = {}
    for w, total in totals.items():
        squares = all_squares.pop(w)
        # Computed in float64 and rounded once into the float32 result, as astype would.
        mean = np.multiply(total, 1.0 / w, out=np.empty(len(x), dtype=x.dtype))
        np.multiply(total, total, out=total)
        total *= 1.0 / w
        np.subtract(squares, total, out=squares)
        del total
        np.maximum(squares, 0, out=squares)
        squares *= 1.0 / (w - ddof)
        out[w] = mean, np.sqrt(squares, out=np.empty(len(x), dtype=x.dtype))
    return out


def window_std(x: np.ndarray, w: int, ddof: int = 1) -> np.ndarray:
    return window_mean_std(x, w, ddof)[1]


def window_min(x: np.ndarray, w: int) -> np.ndarray:
    return _window(x, w, _combine_min)


def window_max(x: np.ndarray, w: int) -> np.ndarray:
    return _window(x, w, _combine_max)


def ema_window(span: int) -> int:
    """Rows a truncated EMA of this span looks at: the weight left beyond 3 spans is below 0.3%."""
    return 3 * span


def truncated_ema(x: np.ndarray, span: int) -> np.ndarray:
    """Exponentially weighted mean over the last `ema_window(span)` rows with alpha = 2/(span+1),
    weights normalised over the window (pandas `ewm(span=span, adjust=True)` applied to exactly
    that window). A finite window keeps it reproducible from a bounded history."""
    length = ema_window(span)
    decay = 1.0 - 2.0 / (span + 1.0)
    out = _window(x, length, _combine_add, decay=decay)
    weight = (1.0 - decay**length) / (1.0 - decay)
    out *= out.dtype.type(1.0 / weight)
    return out
