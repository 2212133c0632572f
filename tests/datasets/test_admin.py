"""The admin pages: upload form with the same validation, version page with schema/profile/preview,
feature spec editing with validation, and the feature preview page."""

import json

import pytest
from django.test import Client

from apps.datasets.demo import PRICE_FEATURES_V1
from apps.datasets.models import DatasetVersion, FeatureSpec
from apps.datasets.services import dataset_version_create, feature_spec_create

from .conftest import csv_bytes, stored_files, upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_admin(staff_user):
    client = Client()
    client.force_login(staff_user)
    return client


@pytest.fixture
def analyst_admin(analyst_user):
    client = Client()
    client.force_login(analyst_user)
    return client


def test_staff_upload_a_version_from_the_dataset_page(staff_admin, table_dataset, table_csv):
    page = staff_admin.get(f"/admin/datasets/dataset/{table_dataset.pk}/change/")
    assert f"/admin/datasets/dataset/{table_dataset.pk}/upload/" in page.content.decode()
    response = staff_admin.post(
        f"/admin/datasets/dataset/{table_dataset.pk}/upload/", {"file": upload("t.csv", table_csv)}
    )
    version = DatasetVersion.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/datasetversion/{version.pk}/change/")
    assert version.source == "admin"


def test_the_admin_upload_shows_the_same_validation_message_and_stores_nothing(
    staff_admin, table_dataset, artifact_storage
):
    response = staff_admin.post(
        f"/admin/datasets/dataset/{table_dataset.pk}/upload/", {"file": upload("t.csv", b"x1,label,x1\n1,yes,2\n")}
    )
    assert response.status_code == 200
    assert "duplicate column name &#x27;x1&#x27; (columns 1 and 3)" in response.content.decode()
    assert not DatasetVersion.objects.exists() and stored_files(artifact_storage) == []


def test_analysts_cannot_upload_from_the_admin(analyst_admin, table_dataset, table_csv):
    page = analyst_admin.get(f"/admin/datasets/dataset/{table_dataset.pk}/change/")
    assert page.status_code == 200 and "/upload/" not in page.content.decode()
    response = analyst_admin.post(
        f"/admin/datasets/dataset/{table_dataset.pk}/upload/", {"file": upload("t.csv", table_csv)}
    )
    assert response.status_code == 403 and not DatasetVersion.objects.exists()


def test_the_version_page_shows_schema_profile_histogram_and_first_rows(
    analyst_admin, table_dataset, table_csv, staff_user
):
    version, _ = dataset_version_create(
        dataset=table_dataset, file=upload("t.csv", table_csv), filename="t.csv", user=staff_user
    )
    html = analyst_admin.get(f"/admin/datasets/datasetversion/{version.pk}/change/").content.decode()
    assert "<code>x1</code></td><td>float64</td>" in html
    assert 'aria-label="histogram of x1"' in html and html.count("flex:1;background:#417690") >= 20
    assert "3 distinct values" in html
    assert "<th>colour</th>" in html and ("<td>yes</td>" in html or "<td>no</td>" in html)


@pytest.fixture
def prices_v1(price_dataset, prices, staff_user):
    dataset_version_create(
        dataset=price_dataset, file=upload("p.csv", csv_bytes(prices)), filename="p.csv", user=staff_user
    )
    return price_dataset


def test_a_bad_spec_in_the_admin_form_names_the_step_and_key(staff_admin, prices_v1):
    bad = {"steps": [{"op": "rolling", "columns": ["close"], "windows": [0]}]}
    response = staff_admin.post(
        "/admin/datasets/featurespec/add/",
        {"dataset": prices_v1.pk, "name": "bad", "description": "", "spec": json.dumps(bad)},
    )
    assert response.status_code == 200
    assert "step 0 &#x27;windows&#x27;: must be at least 2" in response.content.decode()
    response = staff_admin.post(
        "/admin/datasets/featurespec/add/",
        {"dataset": prices_v1.pk, "name": "bad", "description": "", "spec": "{not json"},
    )
    assert "Enter a valid JSON" in response.content.decode()
    assert not FeatureSpec.objects.exists()


def test_saving_in_the_admin_makes_a_new_version_through_the_service(staff_admin, prices_v1, staff_user):
    first, _ = feature_spec_create(dataset=prices_v1, name="px", spec=PRICE_FEATURES_V1, user=staff_user)
    form = staff_admin.get(f"/admin/datasets/featurespec/add/?from={first.pk}").content.decode()
    assert "close_logret1" in form  # prefilled from version 1
    changed = dict(PRICE_FEATURES_V1, steps=PRICE_FEATURES_V1["steps"][:3])
    response = staff_admin.post(
        "/admin/datasets/featurespec/add/",
        {"dataset": prices_v1.pk, "name": "px", "description": "", "spec": json.dumps(changed)},
    )
    assert response.status_code == 302
    assert list(FeatureSpec.objects.values_list("version", "history_rows").order_by("version")) == [(1, 104), (2, 7)]


def test_the_feature_preview_page_shows_engineered_columns(analyst_admin, prices_v1, staff_user):
    spec, _ = feature_spec_create(dataset=prices_v1, name="px", spec=PRICE_FEATURES_V1, user=staff_user)
    html = analyst_admin.get(f"/admin/datasets/featurespec/{spec.pk}/preview/?version=1&rows=4").content.decode()
    assert "<th>close_rsi14</th>" in html and "<th>close_macd_hist</th>" in html
    assert "needs 104 rows of history" in html
    action = analyst_admin.post(
        "/admin/datasets/featurespec/", {"action": "preview_features", "_selected_action": [spec.pk]}
    )
    assert action.status_code == 302 and action["Location"].endswith(f"/featurespec/{spec.pk}/preview/")
