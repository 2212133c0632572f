"""Demo datasets for `manage.py seed_demo`: synthetic prices and two scikit-learn tables. Idempotent:
generation is seeded, so the same bytes come out and the version is found by its sha256."""

import io

from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile

from .choices import DatasetTask, VersionSource
from .generators import generate_ohlcv, sklearn_frame
from .models import Dataset
from .services import dataset_create, dataset_version_create, feature_spec_create

PRICE_STEPS = [
    {"op": "returns", "columns": ["close"], "periods": [1, 5]},
    {"op": "log_returns", "columns": ["close", "volume"], "periods": [1]},
    {"op": "lags", "columns": ["close_logret1"], "lags": [1, 2, 3, 5]},
    {"op": "rolling", "columns": ["close_logret1"], "windows": [5, 20], "stats": ["mean", "std"]},
    {"op": "rsi", "column": "close", "window": 14},
    {"op": "macd", "column": "close", "fast": 12, "slow": 26, "signal": 9},
    {"op": "bollinger", "column": "close", "window": 20, "num_std": 2},
    {"op": "calendar", "features": ["dayofweek", "month"]},
    {"op": "scale", "columns": "*", "method": "standard"},
]
PRICE_LEVELS = ["open", "high", "low", "close", "volume"]

PRICE_FEATURES_V1 = {
    "version": 1,
    "description": "Returns, lags, rolling volatility, RSI, MACD, Bollinger %B and calendar; next-day direction.",
    "steps": PRICE_STEPS,
    "target": {"horizon": 1, "kind": "direction", "name": "direction"},
    # Price and volume levels are not comparable across tickers; their changes are.
    "exclude": PRICE_LEVELS,
}
RETURN_FEATURES_V1 = {
    "version": 1,
    "description": "The price features, predicting the 5-day forward log return.",
    "steps": PRICE_STEPS,
    "target": {"horizon": 5, "kind": "log_return", "name": "fwd_logret5"},
    "exclude": PRICE_LEVELS,
}
TABLE_SPEC = {
    "version": 1,
    "steps": [
        {"op": "impute", "columns": "*", "strategy": "median"},
        {"op": "scale", "columns": "*", "method": "standard"},
    ],
}

DEMO_DATASETS = [
    # name, task, target, time, entity, description, (spec name, spec)
    (
        "demo-prices",
        DatasetTask.CLASSIFICATION,
        "close",
        "date",
        "ticker",
        "Synthetic daily OHLCV for 5 tickers x 600 days (regime-switching GBM); label: next-day direction.",
        ("price-features-v1", PRICE_FEATURES_V1),
    ),
    (
        "demo-returns",
        DatasetTask.REGRESSION,
        "close",
        "date",
        "ticker",
        "The same prices, for regression of the 5-day forward log return.",
        ("return-features-v1", RETURN_FEATURES_V1),
    ),
    (
        "breast-cancer",
        DatasetTask.CLASSIFICATION,
        "target",
        "",
        "",
        "scikit-learn's Wisconsin breast cancer table: malignant or benign.",
        ("standardized", TABLE_SPEC),
    ),
    (
        "diabetes",
        DatasetTask.REGRESSION,
        "target",
        "",
        "",
        "scikit-learn's diabetes table: disease progression after one year.",
        ("standardized", TABLE_SPEC),
    ),
]


def demo_price_csv() -> bytes:
    frame = generate_ohlcv(days=600, seed=7)
    return frame.to_csv(index=False).encode()


def _table_csv(name: str) -> bytes:
    frame, _ = sklearn_frame(name)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, float_format="%.6g")
    return buffer.getvalue().encode()


def _content(name: str) -> tuple[bytes, str]:
    if name in ("demo-prices", "demo-returns"):
        return demo_price_csv(), VersionSource.GENERATOR
    return _table_csv(name.replace("-", "_")), VersionSource.SKLEARN


def seed(*, stdout) -> None:
    user = get_user_model().objects.filter(username="staff").first()
    for name, task, target, time_column, entity_column, description, (spec_name, spec) in DEMO_DATASETS:
        dataset = Dataset.objects.filter(name=name).first()
        if dataset is None:
            dataset = dataset_create(
                name=name,
                task=task,
                target_column=target,
                time_column=time_column,
                entity_column=entity_column,
                description=description,
                user=user,
            )
        content, source = _content(name)
        version, created = dataset_version_create(
            dataset=dataset, file=ContentFile(content), filename=f"{name}.csv", user=user, source=source
        )
        feature_spec, spec_created = feature_spec_create(
            dataset=dataset, name=spec_name, spec=spec, user=user, description=spec.get("description", "")
        )
        stdout.write(
            f"dataset {name}: {version} ({version.rows} rows{', new' if created else ''}), "
            f"spec {feature_spec} (history {feature_spec.history_rows} rows{', new' if spec_created else ''})"
        )
