"""Size limits per dataset version (DATASET_MAX_ROWS, _COLUMNS, _CELLS, _DECOMPRESSED_BYTES): a small file
that expands to a huge table is refused while it is read, with a 400 naming the limit and the value
found, and leaves no version, no stored file and no temporary file behind."""

import gzip
import hashlib
import io
import tempfile
import zipfile

import numpy as np
import pandas as pd
import pytest

from apps.datasets import ingest
from apps.datasets.demo import TABLE_SPEC
from apps.datasets.models import DatasetVersion

from .conftest import csv_bytes, parquet_bytes, stored_files, upload

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def private_temp_dir(tmp_path, monkeypatch):
    """Spooled and decompressed uploads go here, so 'no temporary file left' is checkable while other
    processes use the system's temporary folder."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def post_file(client, dataset, name, content):
    return client.post(
        f"/api/v1/datasets/{dataset.pk}/versions/",
        {"file": upload(name, content, "application/octet-stream")},
        format="multipart",
    )


def assert_refused(response, *fragments, artifact_storage, private_temp_dir):
    assert response.status_code == 400, response.content
    message = " ".join(response.json()["file"])
    for fragment in fragments:
        assert fragment in message, message
    assert DatasetVersion.objects.count() == 0
    assert stored_files(artifact_storage) == []
    assert list(private_temp_dir.iterdir()) == []
    return message


def constant_rows(rows: int) -> pd.DataFrame:
    return pd.DataFrame({"x1": np.zeros(rows, dtype=np.int64), "label": ["yes"] * rows})


def constant_parquet(rows: int) -> bytes:
    """x1 = 0 and label = "yes" in every row, built in Arrow directly (a Python list of millions is slow)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    label = pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, dtype=np.int32)), pa.array(["yes"]))
    buffer = io.BytesIO()
    pq.write_table(pa.table({"x1": np.zeros(rows, dtype=np.int64), "label": label}), buffer)
    return buffer.getvalue()


def gzip_stream(header: bytes, line: bytes, repeats: int) -> bytes:
    """A gzip member of `header` + `line` * repeats, compressed piece by piece (never built whole)."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as packed:
        packed.write(header)
        block = line * 10_000
        for _ in range(repeats // 10_000):
            packed.write(block)
    return out.getvalue()


def test_a_tiny_parquet_file_holding_millions_of_rows_is_refused_from_its_metadata(
    staff_api, table_dataset, settings, artifact_storage, private_temp_dir
):
    settings.DATASET_MAX_ROWS = 100_000
    content = constant_parquet(2_000_000)
    assert len(content) < 100_000  # 2,000,000 rows in a few KB: the size limit alone cannot see it
    assert_refused(
        post_file(staff_api, table_dataset, "bomb.parquet", content),
        "2,000,000 rows (in its metadata)",
        "over the limit of 100,000 rows (DATASET_MAX_ROWS)",
        artifact_storage=artifact_storage,
        private_temp_dir=private_temp_dir,
    )


@pytest.mark.parametrize("name", ["wide.csv", "wide.parquet"])
def test_a_file_with_too_many_columns_is_refused_naming_the_count(
    staff_api, table_dataset, settings, name, artifact_storage, private_temp_dir
):
    settings.DATASET_MAX_COLUMNS = 20
    frame = pd.DataFrame(np.ones((3, 30)), columns=[f"c{i}" for i in range(29)] + ["label"])
    content = csv_bytes(frame) if name.endswith(".csv") else parquet_bytes(frame)
    assert_refused(
        post_file(staff_api, table_dataset, name, content),
        "the file has 30 columns, over the limit of 20 columns (DATASET_MAX_COLUMNS)",
        artifact_storage=artifact_storage,
        private_temp_dir=private_temp_dir,
    )


@pytest.mark.parametrize("name", ["cells.csv", "cells.parquet"])
def test_a_file_with_too_many_cells_is_refused_though_rows_and_columns_each_pass(
    staff_api, table_dataset, settings, name, artifact_storage, private_temp_dir
):
    settings.DATASET_MAX_CELLS = 2_000
    frame = pd.DataFrame(np.ones((500, 10)), columns=[f"c{i}" for i in range(9)] + ["label"])
    content = csv_bytes(frame) if name.endswith(".csv") else parquet_bytes(frame)
    assert_refused(
        post_file(staff_api, table_dataset, name, content),
        "5,000 cells (500 rows x 10 columns)",
        "over the limit of 2,000 cells (DATASET_MAX_CELLS)",
        artifact_storage=artifact_storage,
        private_temp_dir=private_temp_dir,
    )


def test_a_long_csv_is_refused_while_it_is_read_not_after(
    staff_api, table_dataset, settings, monkeypatch, artifact_storage, private_temp_dir
):
    settings.DATASET_MAX_ROWS = 5_000
    monkeypatch.setattr(ingest, "CSV_CHUNK_CELLS", 2_000)  # 1,000 rows of two columns per chunk
    content = csv_bytes(constant_rows(20_000))
    message = assert_refused(
        post_file(staff_api, table_dataset, "long.csv", content),
        "(reading stopped there), over the limit of 5,000 rows (DATASET_MAX_ROWS)",
        artifact_storage=artifact_storage,
        private_temp_dir=private_temp_dir,
    )
    # Reading stopped at the first chunk past the limit, long before row 20,000.
    assert "at least 6,000 rows" in message


def test_a_gzip_bomb_csv_is_refused_as_it_is_decompressed(
    staff_api, table_dataset, settings, artifact_storage, private_temp_dir
):
    settings.DATASET_MAX_DECOMPRESSED_BYTES = 1024 * 1024
    bomb = gzip_stream(b"x1,label\n", b"0,yes\n", 5_000_000)  # 30 MB of CSV
    assert len(bomb) < 100_000
    message = assert_refused(
        post_file(staff_api, table_dataset, "bomb.csv.gz", bomb),
        f"the {len(bomb):,}-byte gzip file decompresses to at least",
        "over the limit of 1,048,576 bytes (DATASET_MAX_DECOMPRESSED_BYTES)",
        artifact_storage=artifact_storage,
        private_temp_dir=private_temp_dir,
    )
    assert "at least 2,097,152 bytes" in message  # one chunk past the limit, not 30 MB


def test_a_zip_bomb_is_refused_from_the_size_its_member_declares(
    staff_api, table_dataset, settings, artifact_storage, private_temp_dir
):
    settings.DATASET_MAX_DECOMPRESSED_BYTES = 1024 * 1024
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as packed:
        packed.writestr("bomb.csv", b"x1,label\n" + b"0,yes\n" * 1_000_000)
    assert_refused(
        post_file(staff_api, table_dataset, "bomb.zip", archive.getvalue()),
        "'bomb.csv' in the zip file declares 6,000,009 bytes",
        "over the limit of 1,048,576 bytes (DATASET_MAX_DECOMPRESSED_BYTES)",
        artifact_storage=artifact_storage,
        private_temp_dir=private_temp_dir,
    )


def test_a_parquet_string_repeated_through_its_dictionary_is_sized_before_it_is_expanded(
    staff_api, table_dataset, settings, artifact_storage, private_temp_dir
):
    settings.DATASET_MAX_DECOMPRESSED_BYTES = 1024 * 1024
    frame = pd.DataFrame({"x1": np.arange(300), "label": ["y" * 100_000] * 300})  # 30 MB of text
    content = parquet_bytes(frame)
    assert len(content) < 50_000
    assert_refused(
        post_file(staff_api, table_dataset, "strings.parquet", content),
        "the file's values expand to at least",
        "(reading stopped at row group 1 of 1)",
        "over the limit of 1,048,576 bytes (DATASET_MAX_DECOMPRESSED_BYTES)",
        artifact_storage=artifact_storage,
        private_temp_dir=private_temp_dir,
    )


def test_a_gzip_or_zip_csv_within_the_limits_is_stored_as_its_table(
    staff_api, table_dataset, table_csv, artifact_storage, private_temp_dir
):
    packed = post_file(staff_api, table_dataset, "table.csv.gz", gzip.compress(table_csv))
    assert packed.status_code == 201, packed.content
    body = packed.json()
    assert body["rows"] == 60 and body["file_format"] == "csv" and body["original_filename"] == "table.csv.gz"
    assert body["sha256"] == hashlib.sha256(table_csv).hexdigest() and body["size_bytes"] == len(table_csv)
    # The same table, plain, zipped or gzipped under a plain name, is the same version.
    assert post_file(staff_api, table_dataset, "table.csv", table_csv).status_code == 200
    assert post_file(staff_api, table_dataset, "renamed.csv", gzip.compress(table_csv)).status_code == 200
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("table.csv", table_csv)
    again = post_file(staff_api, table_dataset, "table.zip", archive.getvalue())
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    assert stored_files(artifact_storage) == [f"datasets/{table_dataset.pk}/{body['sha256']}.csv"]
    assert list(private_temp_dir.iterdir()) == []
    preview = staff_api.get(f"/api/v1/datasets/{table_dataset.pk}/versions/1/preview/?rows=2").json()
    assert preview["columns"] == ["x1", "x2", "colour", "label"] and len(preview["rows"]) == 2


def test_a_zip_must_hold_exactly_one_table_and_a_broken_archive_is_refused(
    staff_api, table_dataset, table_csv, artifact_storage, private_temp_dir
):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("a.csv", table_csv)
        zipped.writestr("b.csv", table_csv)
    assert_refused(
        post_file(staff_api, table_dataset, "two.zip", archive.getvalue()),
        "the zip file holds 2 files ('a.csv', 'b.csv')",
        "exactly one",
        artifact_storage=artifact_storage,
        private_temp_dir=private_temp_dir,
    )
    many = io.BytesIO()
    with zipfile.ZipFile(many, "w") as zipped:
        for number in range(100):
            zipped.writestr(f"{number}.csv", b"")
    assert_refused(
        post_file(staff_api, table_dataset, "many.zip", many.getvalue()),
        "the zip file holds 100 entries",
        artifact_storage=artifact_storage,
        private_temp_dir=private_temp_dir,
    )
    assert_refused(
        post_file(staff_api, table_dataset, "t.zip", b"x1,label\n1,yes\n"),
        "not a readable zip file",
        artifact_storage=artifact_storage,
        private_temp_dir=private_temp_dir,
    )
    assert_refused(
        post_file(staff_api, table_dataset, "t.csv.gz", gzip.compress(table_csv)[:-20]),
        "cannot decompress the gzip file",
        artifact_storage=artifact_storage,
        private_temp_dir=private_temp_dir,
    )


def test_a_parquet_file_written_with_a_named_index_keeps_it_as_a_column(staff_api, table_dataset):
    frame = pd.DataFrame(
        {"x1": [1.5, 2.5, 3.5], "label": ["yes", "no", "yes"]}, index=pd.Index(["a", "b", "c"], name="key")
    )
    response = post_file(staff_api, table_dataset, "indexed.parquet", parquet_bytes_with_index(frame))
    assert response.status_code == 201, response.content
    assert [c["name"] for c in response.json()["schema"]] == ["key", "x1", "label"]
    preview = staff_api.get(f"/api/v1/datasets/{table_dataset.pk}/versions/1/preview/?rows=2").json()
    assert preview["rows"] == [["a", 1.5, "yes"], ["b", 2.5, "no"]]


def parquet_bytes_with_index(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=True)
    return buffer.getvalue()


def test_a_version_over_the_limits_is_previewed_from_its_first_rows_and_its_features_are_refused(
    staff_api, table_dataset, settings, staff_user
):
    from apps.datasets.services import dataset_version_create

    # Stored with the limits raised, as a version stored before they existed.
    frame = pd.DataFrame({"x1": np.arange(150_000), "label": ["yes", "no"] * 75_000})
    dataset_version_create(
        dataset=table_dataset, file=upload("big.parquet", parquet_bytes(frame)), filename="big.parquet", user=staff_user
    )
    settings.DATASET_MAX_ROWS = 100_000
    preview = staff_api.get(f"/api/v1/datasets/{table_dataset.pk}/versions/1/preview/?rows=3")
    assert preview.status_code == 200 and preview.json()["rows"] == [[0, "yes"], [1, "no"], [2, "yes"]]
    features = staff_api.post(
        "/api/v1/feature-specs/preview/", {"dataset": table_dataset.pk, "spec": TABLE_SPEC, "rows": 3}, format="json"
    )
    assert features.status_code == 400
    assert "table v1 has 150,000 rows, over the limit of 100,000 rows (DATASET_MAX_ROWS)" in " ".join(
        features.json()["detail"]
    )


def test_the_admin_upload_form_names_the_limit_and_stores_nothing(
    staff_user, table_dataset, settings, artifact_storage, private_temp_dir
):
    from django.test import Client

    settings.DATASET_MAX_ROWS = 1_000
    client = Client()
    client.force_login(staff_user)
    form = client.get(f"/admin/datasets/dataset/{table_dataset.pk}/upload/").content.decode()
    assert "at most 1,000 rows" in form
    response = client.post(
        f"/admin/datasets/dataset/{table_dataset.pk}/upload/",
        {"file": upload("bomb.parquet", constant_parquet(50_000))},
    )
    assert response.status_code == 200
    assert "50,000 rows (in its metadata), over the limit of 1,000 rows (DATASET_MAX_ROWS)" in response.content.decode()
    assert not DatasetVersion.objects.exists() and stored_files(artifact_storage) == []
    assert list(private_temp_dir.iterdir()) == []


def test_generated_demo_datasets_pass_through_the_same_limits(settings, artifact_storage):
    from django.core.exceptions import ValidationError

    from apps.datasets.demo import seed

    settings.DATASET_MAX_ROWS = 100
    with pytest.raises(ValidationError, match=r"3,000 rows \(reading stopped there\), over the limit of 100 rows"):
        seed(stdout=io.StringIO())
    assert not DatasetVersion.objects.exists() and stored_files(artifact_storage) == []
