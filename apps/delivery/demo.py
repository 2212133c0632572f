"""Demo delivery for `manage.py seed_demo` and `manage.py demo_new_data`.

seed: "price-direction" gets a delivery policy with auto-challenge on, and its experiment retrains
whenever the demo prices get a new version. demo_new_data then adds the next days of the generated
series as that new version: the loop (retrain → evaluation → rollout as challenger → gates) runs on
the workers from there, with nobody acting as staff.
"""

import pandas as pd
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile

DEPLOYMENT = "price-direction"
EXPERIMENT = "price-direction"
DATASET = "demo-prices"
PRICE_COLUMNS = ("open", "high", "low", "close")


def next_days_frame(df: pd.DataFrame, *, days: int, seed: int) -> pd.DataFrame:
    """`df` (date, ticker, OHLCV) followed by `days` more business days per ticker: a fresh stretch of
    the same generator, scaled per ticker so each series continues from its last close."""
    from apps.datasets.generators import generate_ohlcv

    if days < 1:
        raise ValueError("days: at least 1")
    last_date = pd.to_datetime(df["date"]).max()
    tickers = list(dict.fromkeys(df["ticker"].astype(str)))
    start = (last_date + pd.offsets.BDay(1)).strftime("%Y-%m-%d")
    fresh = generate_ohlcv(tickers=tickers, days=days, seed=seed, start=start)
    last_close = df.assign(ticker=df["ticker"].astype(str)).sort_values("date").groupby("ticker")["close"].last()
    for ticker in tickers:
        rows = fresh["ticker"] == ticker
        # The fresh stretch starts at its own random price; its first open should follow the last close.
        factor = float(last_close[ticker]) / float(fresh.loc[rows, "open"].iloc[0])
        for column in PRICE_COLUMNS:
            fresh.loc[rows, column] = (fresh.loc[rows, column] * factor).round(4)
    out = pd.concat([df.assign(date=pd.to_datetime(df["date"]).dt.strftime("%Y-%m-%d")), fresh], ignore_index=True)
    return out.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)


def demo_new_data(*, dataset_name: str = DATASET, days: int = 20, user=None):
    """Adds the next `days` of `dataset_name`'s series as a new version -> (version, created)."""
    from apps.datasets.choices import VersionSource
    from apps.datasets.models import Dataset
    from apps.datasets.selectors import dataset_version_dataframe, dataset_version_latest
    from apps.datasets.services import dataset_version_create

    dataset = Dataset.objects.filter(name=dataset_name).first()
    latest = dataset_version_latest(dataset=dataset) if dataset else None
    if latest is None:
        raise ValueError(f"dataset {dataset_name!r} has no version to extend; run seed_demo first")
    frame = next_days_frame(dataset_version_dataframe(version=latest), days=days, seed=1000 + latest.version)
    csv = frame.to_csv(index=False).encode()
    return dataset_version_create(
        dataset=dataset,
        file=ContentFile(csv),
        filename=f"{dataset_name}-v{latest.version + 1}.csv",
        user=user,
        source=VersionSource.GENERATOR,
    )


def seed(*, stdout) -> None:
    from apps.deployments.models import Deployment
    from apps.training.models import Experiment

    from .models import DeliveryPolicy
    from .services import delivery_policy_save

    deployment = Deployment.objects.filter(name=DEPLOYMENT).first()
    if deployment is None:
        return
    user = get_user_model().objects.filter(username="staff").first()
    if not DeliveryPolicy.objects.filter(deployment=deployment).exists():
        delivery_policy_save(
            policy=DeliveryPolicy(
                deployment=deployment,
                registered_model_id=deployment.registered_model_id,
                auto_challenge=True,
                # Offline accuracy on a few weeks of synthetic random-walk prices is noisy: a candidate may be
                # up to 2 points behind offline and still get a rollout, where the live gates judge it.
                metric="accuracy",
                min_improvement=-0.02,
                when_rollout_open="queue",
                # Short stages so replayed traffic with feedback can move the demo rollout within minutes.
                stages=[
                    {"percent": 10, "min_duration_s": 60, "min_predictions": 50, "min_feedback": 30},
                    {"percent": 50, "min_duration_s": 60, "min_predictions": 50, "min_feedback": 30},
                    {"percent": 100, "min_duration_s": 0, "min_predictions": 0, "min_feedback": 0},
                ],
            ),
            user=user,
        )
        stdout.write(f"delivery policy for {DEPLOYMENT}: auto-challenge on (accuracy, margin -0.02, queue)")
    Experiment.objects.filter(name=EXPERIMENT, retrain_on_new_data=False).update(retrain_on_new_data=True)
