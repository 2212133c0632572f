"""Datasets and feature specs through the API: create, list, validate (errors name step and key), preview."""

import pytest

from apps.datasets.demo import PRICE_FEATURES_V1
from apps.datasets.models import Dataset, FeatureSpec

from .conftest import csv_bytes, upload

pytestmark = pytest.mark.django_db

NEW_DATASET = {
    "name": "fx-rates",
    "task": "regression",
    "target_column": "rate",
    "time_column": "day",
    "entity_column": "pair",
}


@pytest.fixture
def prices_v1(staff_api, price_dataset, prices):
    response = staff_api.post(
        f"/api/v1/datasets/{price_dataset.pk}/versions/",
        {"file": upload("p.csv", csv_bytes(prices))},
        format="multipart",
    )
    assert response.status_code == 201
    return price_dataset


def test_staff_create_a_dataset_and_analysts_read_it(staff_api, analyst_api):
    response = staff_api.post("/api/v1/datasets/", NEW_DATASET, format="json")
    assert response.status_code == 201, response.content
    assert response.json() | NEW_DATASET == response.json() and response.json()["versions"] == 0
    listing = analyst_api.get("/api/v1/datasets/")
    assert [d["name"] for d in listing.json()["results"]] == ["fx-rates"]
    assert analyst_api.get(f"/api/v1/datasets/{response.json()['id']}/").json()["created_by"] == "staffer"


def test_analysts_cannot_create_datasets(analyst_api):
    assert analyst_api.post("/api/v1/datasets/", NEW_DATASET, format="json").status_code == 403
    assert not Dataset.objects.exists()


@pytest.mark.parametrize(
    "change,field",
    [
        ({"task": "ranking"}, "task"),
        ({"name": "has spaces"}, "name"),
        ({"time_column": "rate"}, "time_column"),
    ],
)
def test_a_bad_dataset_is_refused_naming_the_field(staff_api, change, field):
    response = staff_api.post("/api/v1/datasets/", NEW_DATASET | change, format="json")
    assert response.status_code == 400 and field in response.json()
    assert not Dataset.objects.exists()


def test_a_duplicate_dataset_name_is_a_400(staff_api):
    staff_api.post("/api/v1/datasets/", NEW_DATASET, format="json")
    response = staff_api.post("/api/v1/datasets/", NEW_DATASET, format="json")
    assert response.status_code == 400 and "name" in response.json()


def test_saving_a_spec_versions_it_and_identical_content_is_not_duplicated(staff_api, prices_v1):
    body = {"dataset": prices_v1.pk, "name": "price-features", "spec": PRICE_FEATURES_V1}
    first = staff_api.post("/api/v1/feature-specs/", body, format="json")
    assert first.status_code == 201, first.content
    assert first.json()["version"] == 1 and first.json()["history_rows"] == 104
    assert staff_api.post("/api/v1/feature-specs/", body, format="json").status_code == 200
    changed = dict(PRICE_FEATURES_V1, steps=PRICE_FEATURES_V1["steps"][:2])
    second = staff_api.post("/api/v1/feature-specs/", body | {"spec": changed}, format="json")
    assert second.status_code == 201 and second.json()["version"] == 2 and second.json()["history_rows"] == 6
    assert FeatureSpec.objects.count() == 2
    listing = staff_api.get(f"/api/v1/feature-specs/?dataset={prices_v1.pk}")
    assert [(s["name"], s["version"]) for s in listing.json()["results"]] == [
        ("price-features", 2),
        ("price-features", 1),
    ]


@pytest.mark.parametrize(
    "spec,step,key",
    [
        (
            {
                "steps": [
                    {"op": "lags", "columns": ["close"], "lags": [1]},
                    {"op": "rolling", "columns": ["close"], "windows": [1]},
                ]
            },
            1,
            "windows",
        ),
        ({"steps": [{"op": "rsi", "column": "price"}]}, 0, "column"),
        ({"steps": [{"op": "lags", "columns": ["close"], "lags": [1]}, {"op": "explode"}]}, 1, "op"),
        ({"steps": [{"op": "scale", "method": "zscore"}]}, 0, "method"),
        ({"steps": [{"op": "lags", "columns": ["close"], "lags": [1], "lag": 3}]}, 0, "lag"),
        ({"steps": [{"op": "macd", "column": "close", "fast": 30, "slow": 26}]}, 0, "fast"),
        ({"steps": [{"op": "rsi", "column": "ticker"}]}, 0, "column"),
        ({"steps": [], "target": {"horizon": 0, "kind": "direction"}}, None, "target.horizon"),
        ({"steps": [], "target": {"horizon": 1, "kind": "return"}}, None, "target.kind"),
    ],
)
def test_a_bad_spec_is_a_400_naming_the_step_index_and_key(staff_api, prices_v1, spec, step, key):
    response = staff_api.post(
        "/api/v1/feature-specs/", {"dataset": prices_v1.pk, "name": "bad", "spec": spec}, format="json"
    )
    assert response.status_code == 400, response.content
    assert response.json()["spec"]["step"] == step and response.json()["spec"]["key"] == key
    assert response.json()["spec"]["message"]
    assert not FeatureSpec.objects.exists()
    check = staff_api.post("/api/v1/feature-specs/validate/", {"dataset": prices_v1.pk, "spec": spec}, format="json")
    assert check.status_code == 400 and check.json()["spec"]["key"] == key


def test_validate_returns_the_filled_in_spec_and_history_rows(analyst_api, prices_v1):
    spec = {
        "steps": [{"op": "rolling", "columns": ["close"], "windows": [10]}],
        "target": {"horizon": 1, "kind": "direction"},
    }
    response = analyst_api.post(
        "/api/v1/feature-specs/validate/", {"dataset": prices_v1.pk, "spec": spec}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["valid"] and body["history_rows"] == 10 and body["checked_against"] == "prices v1"
    assert body["spec"]["steps"][0]["stats"] == ["mean", "std"]
    without_data = analyst_api.post("/api/v1/feature-specs/validate/", {"spec": spec}, format="json")
    assert without_data.json()["history_rows"] is None


def test_preview_shows_engineered_columns_for_a_spec(analyst_api, prices_v1):
    response = analyst_api.post(
        "/api/v1/feature-specs/preview/", {"dataset": prices_v1.pk, "spec": PRICE_FEATURES_V1, "rows": 5}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["columns"][:2] == ["date", "ticker"] and "close_rsi14" in body["columns"]
    assert len(body["rows"]) == 5 and all(v is not None for v in body["rows"][0])
    assert body["history_rows"] == 104 and body["classes"] == ["down", "up"] and body["dataset_version"] == 1
    assert body["summary"]["train_rows"] > body["summary"]["val_rows"] > 0


def test_preview_of_a_saved_spec_and_its_errors(staff_api, prices_v1):
    saved = staff_api.post(
        "/api/v1/feature-specs/", {"dataset": prices_v1.pk, "name": "p", "spec": PRICE_FEATURES_V1}, format="json"
    ).json()
    assert (
        staff_api.post("/api/v1/feature-specs/preview/", {"feature_spec": saved["id"]}, format="json").status_code
        == 200
    )
    missing = staff_api.post(
        "/api/v1/feature-specs/preview/", {"feature_spec": saved["id"], "version": 7}, format="json"
    )
    assert missing.status_code == 400 and "version" in missing.json()
    neither = staff_api.post("/api/v1/feature-specs/preview/", {"rows": 3}, format="json")
    assert neither.status_code == 400 and "spec" in neither.json()


def test_outsiders_cannot_validate_or_preview(outsider_api, prices_v1):
    assert (
        outsider_api.post("/api/v1/feature-specs/validate/", {"spec": {"steps": []}}, format="json").status_code == 403
    )
    assert (
        outsider_api.post(
            "/api/v1/feature-specs/preview/", {"dataset": prices_v1.pk, "spec": {}}, format="json"
        ).status_code
        == 403
    )


def test_listing_feature_specs_by_a_dataset_that_is_not_an_id_is_a_400_naming_the_parameter(analyst_api):
    for value in ("%C2%B2", "%D9%A3", "abc"):  # superscript two and Arabic-Indic three are "digits" to isdigit
        response = analyst_api.get(f"/api/v1/feature-specs/?dataset={value}")
        assert response.status_code == 400 and "dataset" in response.json(), value
    assert analyst_api.get("/api/v1/feature-specs/?dataset=99999999999999999999999").status_code == 404
