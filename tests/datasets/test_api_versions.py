"""Uploading versions through POST /api/v1/datasets/<id>/versions/: every rejection names the problem and
where it is, and leaves no version row and no stored file behind."""

import hashlib

import numpy as np
import pandas as pd
import pytest

from apps.datasets.models import DatasetVersion

from .conftest import csv_bytes, parquet_bytes, stored_files, upload

pytestmark = pytest.mark.django_db


def post_file(client, dataset, name, content, content_type="text/csv"):
    return client.post(
        f"/api/v1/datasets/{dataset.pk}/versions/", {"file": upload(name, content, content_type)}, format="multipart"
    )


def assert_rejected(response, *fragments, artifact_storage):
    assert response.status_code == 400, response.content
    message = " ".join(response.json()["file"])
    for fragment in fragments:
        assert fragment in message, message
    assert DatasetVersion.objects.count() == 0
    assert stored_files(artifact_storage) == []


def test_staff_upload_a_csv_and_get_schema_profile_and_hash(staff_api, table_dataset, table_csv, artifact_storage):
    response = post_file(staff_api, table_dataset, "table.csv", table_csv)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["version"] == 1 and body["rows"] == 60
    assert body["sha256"] == hashlib.sha256(table_csv).hexdigest()
    assert body["schema"] == [
        {"name": "x1", "dtype": "float64", "nulls": 0},
        {"name": "x2", "dtype": "int64", "nulls": 0},
        {"name": "colour", "dtype": "string", "nulls": 0},
        {"name": "label", "dtype": "string", "nulls": 0},
    ]
    x1 = body["profile"]["x1"]
    assert set(x1) >= {"mean", "std", "min", "max", "quantiles", "histogram"}
    assert sum(x1["histogram"]["counts"]) == 60 and set(x1["quantiles"]) == {"p5", "p25", "p50", "p75", "p95"}
    assert body["profile"]["colour"]["distinct"] == 3
    assert stored_files(artifact_storage) == [f"datasets/{table_dataset.pk}/{body['sha256']}.csv"]


def test_uploading_identical_content_again_returns_the_existing_version(
    staff_api, table_dataset, table_csv, artifact_storage
):
    first = post_file(staff_api, table_dataset, "table.csv", table_csv)
    again = post_file(staff_api, table_dataset, "renamed.csv", table_csv)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"] and again.json()["version"] == 1
    assert DatasetVersion.objects.count() == 1 and len(stored_files(artifact_storage)) == 1
    changed = post_file(staff_api, table_dataset, "table.csv", table_csv.replace(b"red", b"pink", 1))
    assert changed.status_code == 201 and changed.json()["version"] == 2


def test_a_parquet_upload_keeps_its_types(staff_api, price_dataset, prices):
    response = post_file(staff_api, price_dataset, "prices.parquet", parquet_bytes(prices), "application/octet-stream")
    assert response.status_code == 201, response.content
    dtypes = {c["name"]: c["dtype"] for c in response.json()["schema"]}
    assert dtypes == {
        "date": "string",
        "ticker": "string",
        "open": "float64",
        "high": "float64",
        "low": "float64",
        "close": "float64",
        "volume": "int64",
    }


def test_it_rejects_an_empty_file(staff_api, table_dataset, artifact_storage):
    assert_rejected(post_file(staff_api, table_dataset, "empty.csv", b""), "empty", artifact_storage=artifact_storage)
    assert_rejected(
        post_file(staff_api, table_dataset, "blank.csv", b"  \n\n"), "empty", artifact_storage=artifact_storage
    )


def test_it_rejects_a_csv_without_a_header(staff_api, table_dataset, artifact_storage):
    assert_rejected(
        post_file(staff_api, table_dataset, "t.csv", b"1.5,2,3\n4,5,6\n"),
        "no column names",
        artifact_storage=artifact_storage,
    )
    assert_rejected(
        post_file(staff_api, table_dataset, "t.csv", b"x1,,label\n1,2,yes\n"),
        "column 2",
        "no name",
        artifact_storage=artifact_storage,
    )


def test_it_rejects_a_header_with_no_rows(staff_api, table_dataset, artifact_storage):
    assert_rejected(
        post_file(staff_api, table_dataset, "t.csv", b"x1,label\n"), "no data rows", artifact_storage=artifact_storage
    )


def test_it_rejects_duplicate_column_names(staff_api, table_dataset, artifact_storage):
    content = b"x1,label,x1\n1,yes,2\n"
    assert_rejected(
        post_file(staff_api, table_dataset, "t.csv", content),
        "duplicate column name 'x1'",
        "columns 1 and 3",
        artifact_storage=artifact_storage,
    )


def test_it_rejects_a_csv_without_the_target_column(staff_api, table_dataset, artifact_storage):
    assert_rejected(
        post_file(staff_api, table_dataset, "t.csv", b"x1,x2\n1,2\n3,4\n"),
        "target column 'label'",
        "missing",
        "x1, x2",
        artifact_storage=artifact_storage,
    )


def test_it_rejects_a_time_series_without_its_time_or_entity_column(staff_api, price_dataset, prices, artifact_storage):
    assert_rejected(
        post_file(staff_api, price_dataset, "p.csv", csv_bytes(prices.drop(columns=["ticker"]))),
        "entity column 'ticker'",
        artifact_storage=artifact_storage,
    )
    assert_rejected(
        post_file(staff_api, price_dataset, "p.csv", csv_bytes(prices.drop(columns=["date"]))),
        "time column 'date'",
        artifact_storage=artifact_storage,
    )


def test_it_rejects_a_word_in_a_numeric_column_naming_row_and_column(
    staff_api, table_dataset, table_csv, artifact_storage
):
    frame = pd.read_csv(pd.io.common.BytesIO(table_csv)).astype({"x1": object})
    frame.loc[41, "x1"] = "oops"
    assert_rejected(
        post_file(staff_api, table_dataset, "t.csv", csv_bytes(frame)),
        "row 42",
        "column 'x1'",
        "'oops' is not a number",
        artifact_storage=artifact_storage,
    )


def test_a_column_numeric_in_the_previous_version_must_stay_numeric(
    staff_api, table_dataset, table_csv, artifact_storage
):
    assert post_file(staff_api, table_dataset, "t.csv", table_csv).status_code == 201
    frame = pd.read_csv(pd.io.common.BytesIO(table_csv)).astype({"x2": object})
    frame.loc[:30, "x2"] = "many"  # now mostly words, still not acceptable for a numeric column
    response = post_file(staff_api, table_dataset, "t.csv", csv_bytes(frame))
    assert response.status_code == 400 and "row 1, column 'x2'" in response.json()["file"][0]
    assert DatasetVersion.objects.count() == 1 and len(stored_files(artifact_storage)) == 1


def test_common_missing_value_markers_are_empty_cells_not_words(staff_api, table_dataset):
    content = b"x1,label\n1.5,yes\nNA,no\n,yes\nnull,no\n2.5,yes\n"
    response = post_file(staff_api, table_dataset, "t.csv", content)
    assert response.status_code == 201, response.content
    assert response.json()["schema"][0] == {"name": "x1", "dtype": "float64", "nulls": 3}


def test_it_rejects_a_column_that_is_empty_in_every_row(staff_api, table_dataset, artifact_storage):
    content = b"x1,notes,label\n1,,yes\n2,,no\n"
    assert_rejected(
        post_file(staff_api, table_dataset, "t.csv", content),
        "column 'notes' is empty in every row",
        artifact_storage=artifact_storage,
    )


def test_it_rejects_a_file_that_is_not_utf8(staff_api, table_dataset, artifact_storage):
    content = "x1,label\n1,oui\n2,très bien\n".encode("latin-1")
    assert_rejected(
        post_file(staff_api, table_dataset, "t.csv", content),
        "UTF-8",
        "byte 0xe8",
        "line 3",
        artifact_storage=artifact_storage,
    )


def test_it_rejects_a_nul_byte_in_a_csv_cell_or_header_naming_offset_and_line(
    staff_api, table_dataset, artifact_storage
):
    assert_rejected(
        post_file(staff_api, table_dataset, "t.csv", b"x1,label\n1,yes\n2,hello\x00x\n"),
        "NUL byte",
        "offset 22",
        "line 3",
        artifact_storage=artifact_storage,
    )
    assert_rejected(
        post_file(staff_api, table_dataset, "t.csv", b"x1,la\x00bel\n1,yes\n"),
        "NUL byte",
        "offset 5",
        "line 1",
        artifact_storage=artifact_storage,
    )


def test_it_rejects_a_nul_in_a_parquet_column_name_or_string_value(staff_api, table_dataset, artifact_storage):
    named = parquet_bytes(pd.DataFrame({"x1": [1.0, 2.0], "la\x00bel": ["yes", "no"]}))
    assert_rejected(
        post_file(staff_api, table_dataset, "t.parquet", named, "application/octet-stream"),
        "column name",
        "NUL",
        artifact_storage=artifact_storage,
    )
    valued = parquet_bytes(pd.DataFrame({"x1": [1.0, 2.0], "label": ["yes", "n\x00o"]}))
    assert_rejected(
        post_file(staff_api, table_dataset, "t.parquet", valued, "application/octet-stream"),
        "row 2, column 'label'",
        "NUL",
        artifact_storage=artifact_storage,
    )


def test_it_rejects_a_file_over_the_size_limit(staff_api, table_dataset, table_csv, settings, artifact_storage):
    settings.DATASET_UPLOAD_MAX_BYTES = 500
    assert len(table_csv) > 500
    assert_rejected(
        post_file(staff_api, table_dataset, "t.csv", table_csv),
        "over the limit of 500 bytes",
        artifact_storage=artifact_storage,
    )


def test_a_request_body_far_over_the_limit_is_refused_before_it_is_read(
    staff_api, table_dataset, settings, artifact_storage
):
    settings.DATASET_UPLOAD_MAX_BYTES = 1000
    big = b"x1,label\n" + b"1.0,yes\n" * 20_000
    assert_rejected(
        post_file(staff_api, table_dataset, "t.csv", big),
        "the upload is",
        "over the limit of 1,000 bytes",
        artifact_storage=artifact_storage,
    )


def test_it_rejects_an_unreadable_parquet_file_and_unknown_types(staff_api, table_dataset, artifact_storage):
    assert_rejected(
        post_file(staff_api, table_dataset, "t.parquet", b"PAR1 not really"),
        "not a readable Parquet",
        artifact_storage=artifact_storage,
    )
    assert_rejected(
        post_file(staff_api, table_dataset, "t.xlsx", b"x1,label\n1,yes\n"),
        "unsupported file type",
        artifact_storage=artifact_storage,
    )


def test_it_rejects_dates_that_do_not_parse_naming_the_row(staff_api, price_dataset, prices, artifact_storage):
    frame = prices.copy()
    frame.loc[7, "date"] = "someday"
    assert_rejected(
        post_file(staff_api, price_dataset, "p.csv", csv_bytes(frame)),
        "column 'date'",
        "row 8",
        "'someday' is not a date",
        artifact_storage=artifact_storage,
    )


def test_a_failure_while_saving_the_row_removes_the_stored_file(
    staff_api, table_dataset, table_csv, artifact_storage, monkeypatch
):
    from apps.datasets import services

    def broken_create(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(services.DatasetVersion.objects, "create", broken_create)
    with pytest.raises(RuntimeError):
        services.dataset_version_create(dataset=table_dataset, file=upload("t.csv", table_csv), filename="t.csv")
    assert stored_files(artifact_storage) == []


def test_analysts_list_and_read_versions_but_cannot_upload(analyst_api, staff_api, table_dataset, table_csv):
    post_file(staff_api, table_dataset, "t.csv", table_csv)
    assert post_file(analyst_api, table_dataset, "t2.csv", table_csv + b"1,2,red,no\n").status_code == 403
    listing = analyst_api.get(f"/api/v1/datasets/{table_dataset.pk}/versions/")
    assert listing.status_code == 200 and [v["version"] for v in listing.json()["results"]] == [1]
    detail = analyst_api.get(f"/api/v1/datasets/{table_dataset.pk}/versions/1/")
    assert detail.status_code == 200 and "profile" in detail.json()
    preview = analyst_api.get(f"/api/v1/datasets/{table_dataset.pk}/versions/1/preview/?rows=3")
    assert preview.json()["columns"] == ["x1", "x2", "colour", "label"] and len(preview.json()["rows"]) == 3
    assert analyst_api.get(f"/api/v1/datasets/{table_dataset.pk}/versions/9/").status_code == 404


def test_outsiders_and_anonymous_clients_are_refused(outsider_api, anon_api, table_dataset, table_csv):
    for client, status in ((outsider_api, 403), (anon_api, 401)):
        assert client.get("/api/v1/datasets/").status_code == status
        assert post_file(client, table_dataset, "t.csv", table_csv).status_code == status
    assert DatasetVersion.objects.count() == 0


def test_the_stored_version_reads_back_with_its_types(staff_api, table_dataset, table_csv):
    from apps.datasets.selectors import dataset_version_dataframe

    post_file(staff_api, table_dataset, "t.csv", table_csv)
    frame = dataset_version_dataframe(version=DatasetVersion.objects.get())
    original = pd.read_csv(pd.io.common.BytesIO(table_csv))
    assert list(frame.columns) == list(original.columns)
    np.testing.assert_allclose(frame["x1"], original["x1"])
    assert frame["x2"].dtype == np.int64 and frame["colour"].tolist() == original["colour"].tolist()


def test_a_tampered_stored_file_is_refused_on_read(staff_api, table_dataset, table_csv, artifact_storage):
    from apps.datasets.selectors import DatasetFileError, dataset_version_dataframe

    post_file(staff_api, table_dataset, "t.csv", table_csv)
    version = DatasetVersion.objects.get()
    (artifact_storage / version.file).write_bytes(table_csv.replace(b"yes", b"no!"))
    with pytest.raises(DatasetFileError, match="sha256"):
        dataset_version_dataframe(version=version)
    response = staff_api.get(f"/api/v1/datasets/{table_dataset.pk}/versions/1/preview/")
    assert response.status_code == 409


def test_the_time_column_is_profiled_as_dates(staff_api, price_dataset, prices):
    body = post_file(staff_api, price_dataset, "p.csv", csv_bytes(prices)).json()
    assert body["profile"]["date"]["kind"] == "datetime"
    assert body["profile"]["date"]["min"].startswith(prices.date.min())
    assert body["profile"]["date"]["distinct"] == 160


def test_a_new_version_is_announced_once_after_commit(
    staff_user, table_dataset, table_csv, django_capture_on_commit_callbacks
):
    from apps.datasets.services import dataset_version_create
    from apps.datasets.signals import dataset_version_created

    received = []

    def listener(sender, version, **kwargs):
        received.append(version.pk)

    dataset_version_created.connect(listener)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            version, created = dataset_version_create(
                dataset=table_dataset, file=upload("t.csv", table_csv), filename="t.csv", user=staff_user
            )
        with django_capture_on_commit_callbacks(execute=True):
            again, created_again = dataset_version_create(
                dataset=table_dataset, file=upload("t.csv", table_csv), filename="t.csv", user=staff_user
            )
    finally:
        dataset_version_created.disconnect(listener)
    assert created and not created_again and again.pk == version.pk
    assert received == [version.pk]
