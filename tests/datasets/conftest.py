import io

import numpy as np
import pandas as pd
import pytest

from apps.datasets.generators import generate_ohlcv
from apps.datasets.preprocessing import DatasetInfo


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # The role fixtures set passwords; a deliberately slow hasher costs half a second per test here.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def artifact_storage(settings, tmp_path):
    """Each test stores files in its own folder, so 'nothing left in storage' is checkable."""
    location = tmp_path / "artifacts"
    location.mkdir()
    backend = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(location), "base_url": "/media/"},
    }
    settings.STORAGES = {**settings.STORAGES, "artifacts": backend, "default": backend}
    return location


def stored_files(location) -> list[str]:
    return sorted(str(p.relative_to(location)) for p in location.rglob("*") if p.is_file())


@pytest.fixture
def prices():
    """3 tickers x 160 business days of synthetic OHLCV."""
    return generate_ohlcv(tickers=("AAA", "BBB", "CCC"), days=160, seed=3)


@pytest.fixture
def price_info():
    return DatasetInfo(task="classification", target_column="close", time_column="date", entity_column="ticker")


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def upload(name: str, content: bytes, content_type: str = "text/csv"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, content, content_type=content_type)


@pytest.fixture
def table_csv() -> bytes:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "x1": rng.normal(size=60).round(4),
            "x2": rng.integers(0, 100, size=60),
            "colour": rng.choice(["red", "green", "blue"], size=60),
            "label": rng.choice(["yes", "no"], size=60),
        }
    )
    return csv_bytes(frame)


@pytest.fixture
def table_dataset(db, staff_user):
    from apps.datasets.services import dataset_create

    return dataset_create(name="table", task="classification", target_column="label", user=staff_user)


@pytest.fixture
def price_dataset(db, staff_user):
    from apps.datasets.services import dataset_create

    return dataset_create(
        name="prices",
        task="classification",
        target_column="close",
        time_column="date",
        entity_column="ticker",
        user=staff_user,
    )


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()
