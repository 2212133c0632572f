import io

import numpy as np
import pytest

from apps.datasets.generators import generate_ohlcv, sklearn_frame
from apps.datasets.models import Dataset, DatasetVersion, FeatureSpec


def test_the_price_generator_is_seeded_and_realistic():
    frame = generate_ohlcv(tickers=("A", "B"), days=300, seed=5)
    assert frame.equals(generate_ohlcv(tickers=("A", "B"), days=300, seed=5))
    assert not frame.equals(generate_ohlcv(tickers=("A", "B"), days=300, seed=6))
    assert len(frame) == 600 and list(frame.columns) == ["date", "ticker", "open", "high", "low", "close", "volume"]
    assert (frame.low <= frame[["open", "close"]].min(axis=1)).all()
    assert (frame.high >= frame[["open", "close"]].max(axis=1)).all()
    assert (frame.volume > 0).all() and (frame.close > 0).all()
    returns = np.log(frame.close).groupby(frame.ticker).diff().dropna()
    assert 0.003 < returns.std() < 0.05  # daily volatility of a stock
    # Regime switches: volatility in the calmest and the wildest 30-day stretches differ clearly.
    rolling = returns.rolling(30).std().dropna()
    assert rolling.max() > 2 * rolling.min()


def test_bundled_sklearn_tables_load_offline():
    frame, target = sklearn_frame("breast_cancer")
    assert target == "target" and set(frame.target) == {"malignant", "benign"} and len(frame) == 569
    with pytest.raises(ValueError):
        sklearn_frame("mnist")


@pytest.mark.django_db
def test_seed_demo_creates_the_demo_datasets_once(settings):
    from apps.datasets import demo

    out = io.StringIO()
    demo.seed(stdout=out)
    demo.seed(stdout=out)
    assert sorted(Dataset.objects.values_list("name", flat=True)) == [
        "breast-cancer",
        "demo-prices",
        "demo-returns",
        "diabetes",
    ]
    assert DatasetVersion.objects.count() == 4 and FeatureSpec.objects.count() == 4
    prices = DatasetVersion.objects.get(dataset__name="demo-prices")
    assert prices.rows == 3000 and prices.source == "generator"
    spec = FeatureSpec.objects.get(name="price-features-v1")
    assert spec.history_rows == 104 and spec.spec["target"]["kind"] == "direction"
    assert Dataset.objects.get(name="demo-prices").entity_column == "ticker"
