"""Demo data made here, without network: synthetic daily prices and scikit-learn's bundled tables."""

import numpy as np
import pandas as pd

DEFAULT_TICKERS = ("ACME", "BOLT", "CRUX", "DYNA", "EPIC")

# Market regimes: daily drift and volatility of log returns, and how volume reacts.
REGIMES = (
    {"name": "bull", "mu": 0.0007, "sigma": 0.009, "volume": 1.0},
    {"name": "bear", "mu": -0.0010, "sigma": 0.020, "volume": 1.5},
    {"name": "calm", "mu": 0.0001, "sigma": 0.006, "volume": 0.7},
)
REGIME_MEAN_DAYS = 60


def _regime_path(rng: np.random.Generator, days: int) -> np.ndarray:
    """A Markov chain of regimes with geometric run lengths (mean REGIME_MEAN_DAYS)."""
    out = np.empty(days, dtype=np.int64)
    filled, regime = 0, int(rng.integers(len(REGIMES)))
    while filled < days:
        run = int(rng.geometric(1.0 / REGIME_MEAN_DAYS))
        out[filled : filled + run] = regime
        filled += run
        regime = int((regime + rng.integers(1, len(REGIMES))) % len(REGIMES))
    return out


def generate_ohlcv(
    *, tickers=DEFAULT_TICKERS, days: int = 600, seed: int = 0, start: str = "2021-01-04"
) -> pd.DataFrame:
    """Daily OHLCV rows (date, ticker, open, high, low, close, volume), ticker by ticker in date order.

    Log returns are a market factor (shared regimes: bull, bear, calm) times a per-ticker beta plus
    idiosyncratic noise, i.e. geometric Brownian motion whose drift and volatility switch with the
    regime. Volume rises with the size of the move and in bear markets. Same seed, same data."""
    rng = np.random.default_rng(seed)
    tickers = list(tickers)
    dates = pd.bdate_range(start=start, periods=days)
    regime = _regime_path(rng, days)
    mu = np.array([r["mu"] for r in REGIMES])[regime]
    sigma = np.array([r["sigma"] for r in REGIMES])[regime]
    volume_factor = np.array([r["volume"] for r in REGIMES])[regime]
    market = mu + sigma * rng.standard_normal(days)

    count = len(tickers)
    beta = rng.uniform(0.6, 1.5, size=(count, 1))
    idio_sigma = rng.uniform(0.004, 0.012, size=(count, 1))
    log_returns = beta * market[None, :] + idio_sigma * rng.standard_normal((count, days))
    start_price = rng.uniform(20, 400, size=(count, 1))
    close = start_price * np.exp(np.cumsum(log_returns, axis=1))
    previous = np.concatenate([start_price, close[:, :-1]], axis=1)
    day_sigma = np.sqrt((beta * sigma[None, :]) ** 2 + idio_sigma**2)
    # Overnight gap, then the intraday range stretches beyond open and close.
    open_ = previous * np.exp(0.3 * day_sigma * rng.standard_normal((count, days)))
    high = np.maximum(open_, close) * np.exp(np.abs(0.5 * day_sigma * rng.standard_normal((count, days))))
    low = np.minimum(open_, close) * np.exp(-np.abs(0.5 * day_sigma * rng.standard_normal((count, days))))
    base_volume = rng.uniform(2e5, 5e6, size=(count, 1))
    surprise = np.abs(log_returns) / day_sigma
    volume = base_volume * volume_factor[None, :] * (0.6 + 0.4 * surprise) * rng.lognormal(0, 0.25, (count, days))

    return pd.DataFrame(
        {
            "date": np.tile(dates.strftime("%Y-%m-%d").to_numpy(), count),
            "ticker": np.repeat(tickers, days),
            "open": np.round(open_, 4).ravel(),
            "high": np.round(high, 4).ravel(),
            "low": np.round(low, 4).ravel(),
            "close": np.round(close, 4).ravel(),
            "volume": np.round(volume).astype(np.int64).ravel(),
        }
    )


def sklearn_frame(name: str) -> tuple[pd.DataFrame, str]:
    """One of scikit-learn's bundled (offline) datasets as a table, and its target column."""
    from sklearn import datasets

    loaders = {
        "breast_cancer": datasets.load_breast_cancer,
        "diabetes": datasets.load_diabetes,
        "iris": datasets.load_iris,
        "wine": datasets.load_wine,
    }
    if name not in loaders:
        raise ValueError(f"unknown bundled dataset {name!r} (one of: {', '.join(loaders)})")
    bunch = loaders[name](as_frame=True)
    frame = bunch.frame.copy()
    frame.columns = [str(c).replace(" ", "_") for c in frame.columns]
    if name == "breast_cancer":
        # Readable labels instead of 0/1.
        frame["target"] = np.where(frame["target"] == 0, "malignant", "benign")
    return frame, "target"
