"""Tiny real datasets and experiments built through the datasets and training services."""

from django.core.files.base import ContentFile

TINY_PRICE_SPEC = {
    "version": 1,
    "steps": [
        {"op": "log_returns", "columns": ["close", "volume"], "periods": [1]},
        {"op": "lags", "columns": ["close_logret1"], "lags": [1, 2]},
        {"op": "rolling", "columns": ["close_logret1"], "windows": [5], "stats": ["mean", "std"]},
        {"op": "scale", "columns": "*", "method": "standard"},
    ],
    "target": {"horizon": 1, "kind": "direction", "name": "direction"},
    "exclude": ["open", "high", "low", "close", "volume"],
}

TABLE_SPEC = {"version": 1, "steps": [{"op": "scale", "columns": "*", "method": "standard"}]}

# Small and quick: 1-2 epochs, a few hidden units.
FAST_PARAMS = {
    ("torch", "mlp"): {"epochs": 2, "hidden_size": 8, "num_layers": 1},
    ("torch", "lstm"): {"epochs": 2, "hidden_size": 8, "window": 3},
    ("keras", "mlp"): {"epochs": 2, "hidden_size": 8, "num_layers": 1},
    ("keras", "lstm"): {"epochs": 1, "hidden_size": 4, "window": 3},
    ("sklearn", "linear"): {},
    ("sklearn", "gradient_boosting"): {"max_iter": 20, "stage_size": 10},
}


def fast_params(framework: str, model_type: str, **overrides) -> dict:
    from apps.frameworks import get_adapter

    known = get_adapter(framework).model_types.get(model_type, {})
    params = {k: v for k, v in FAST_PARAMS.get((framework, model_type), {}).items() if k in known}
    return params | overrides


def price_dataset(*, name: str = "tiny-prices", tickers=("AAA", "BBB"), days: int = 120, seed: int = 3, user=None):
    """A two-ticker daily price dataset (classification: next-day direction) and its feature spec."""
    from apps.datasets.generators import generate_ohlcv
    from apps.datasets.services import dataset_create, dataset_version_create, feature_spec_create

    dataset = dataset_create(
        name=name, task="classification", target_column="close", time_column="date", entity_column="ticker", user=user
    )
    csv = generate_ohlcv(tickers=tickers, days=days, seed=seed).to_csv(index=False).encode()
    version, _ = dataset_version_create(dataset=dataset, file=ContentFile(csv), filename="prices.csv", user=user)
    spec, _ = feature_spec_create(dataset=dataset, name="tiny-features", spec=TINY_PRICE_SPEC, user=user)
    return dataset, version, spec


def price_version_add(*, dataset, days: int = 130, seed: int = 4, user=None):
    from apps.datasets.generators import generate_ohlcv
    from apps.datasets.services import dataset_version_create

    csv = generate_ohlcv(tickers=("AAA", "BBB"), days=days, seed=seed).to_csv(index=False).encode()
    version, _ = dataset_version_create(dataset=dataset, file=ContentFile(csv), filename="prices2.csv", user=user)
    return version


def diabetes_dataset(*, name: str = "tiny-diabetes", rows: int = 200, user=None):
    """A plain regression table (no time, no entity)."""
    from apps.datasets.generators import sklearn_frame
    from apps.datasets.services import dataset_create, dataset_version_create, feature_spec_create

    frame, target = sklearn_frame("diabetes")
    dataset = dataset_create(name=name, task="regression", target_column=target, user=user)
    csv = frame.head(rows).to_csv(index=False, float_format="%.6g").encode()
    version, _ = dataset_version_create(dataset=dataset, file=ContentFile(csv), filename="diabetes.csv", user=user)
    spec, _ = feature_spec_create(dataset=dataset, name="scaled", spec=TABLE_SPEC, user=user)
    return dataset, version, spec


def experiment(
    *,
    dataset,
    spec,
    name: str = "tiny-direction",
    framework: str = "sklearn",
    model_type: str = "",
    params: dict | None = None,
    user=None,
    **kwargs,
):
    from apps.frameworks import get_adapter
    from apps.training.services.experiments import experiment_create

    model_type = model_type or next(iter(get_adapter(framework).model_types))
    return experiment_create(
        name=name,
        dataset=dataset,
        feature_spec=spec,
        default_framework=framework,
        default_model_type=model_type,
        default_params=fast_params(framework, model_type) if params is None else params,
        user=user,
        **kwargs,
    )
