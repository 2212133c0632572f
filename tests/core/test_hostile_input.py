"""Hostile input found by fuzzing the API: each a 400 naming what is at fault, never a 500, nothing stored."""

import pytest
from rest_framework.test import APIClient

from apps.datasets.models import FeatureSpec
from apps.registry.models import ModelVersion
from apps.training.models import Experiment, TrainingRun
from apps.tuning.models import TuningStudy
from tests.deployments.conftest import (  # noqa: F401  (fixtures)
    _fresh_serving_state,
    champion,
    deployment,
    make_version,
)

DEEP = b"[" * 10_000 + b"]" * 10_000


def deep_in(prefix: bytes, suffix: bytes = b"}") -> bytes:
    return prefix + DEEP + suffix


DEEP_BODIES = [
    ("/api/v1/experiments/", deep_in(b'{"name": "deep", "dataset": 1, "default_params": {"a": ', b"}}")),
    ("/api/v1/runs/", deep_in(b'{"experiment": 1, "params": {"a": ', b"}}")),
    ("/api/v1/studies/", deep_in(b'{"name": "deep", "experiment": 1, "search_space": ')),
    ("/api/v1/feature-specs/validate/", deep_in(b'{"spec": ')),
    ("/api/v1/experiments/", DEEP),
]


def stored_counts():
    return (
        Experiment.objects.count(),
        TrainingRun.objects.count(),
        TuningStudy.objects.count(),
        FeatureSpec.objects.count(),
    )


def session_client(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


@pytest.mark.parametrize("path,body", DEEP_BODIES, ids=[f"{p}-{i}" for i, (p, _) in enumerate(DEEP_BODIES)])
def test_json_nested_ten_thousand_deep_is_a_400_naming_the_body_and_nothing_is_stored(staff_api, path, body):
    before = stored_counts()
    response = staff_api.generic("POST", path, body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert response.json()["detail"].startswith("body: the JSON is nested deeper than 64 levels"), response.json()
    assert stored_counts() == before


def test_the_drf_parser_refuses_deep_json_by_itself_without_the_middleware(staff_api, settings):
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != "apps.core.middleware.HostileInputMiddleware"]
    response = staff_api.generic("POST", "/api/v1/experiments/", DEEP_BODIES[0][1], content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert "body: the JSON is nested deeper than 64 levels" in response.json()["detail"]
    response = staff_api.generic(
        "POST", "/api/v1/experiments/", b'{"name": "a\\u0000", "dataset": 1}', content_type="application/json"
    )
    assert response.status_code == 400 and "NUL" in response.json()["name"][0], response.content
    assert not Experiment.objects.exists()


def test_the_depth_limit_is_a_setting_and_json_at_the_limit_still_parses(staff_api, settings):
    settings.API_JSON_MAX_DEPTH = 3
    response = staff_api.post("/api/v1/feature-specs/validate/", {"spec": {"steps": [[1]]}}, format="json")
    assert response.status_code == 400 and "deeper than 3 levels" in response.json()["detail"]
    response = staff_api.post("/api/v1/feature-specs/validate/", {"spec": {"steps": []}}, format="json")
    assert response.status_code != 500 and "deeper" not in response.content.decode()


def test_brackets_and_escaped_quotes_inside_strings_do_not_count_as_nesting():
    from apps.core.jsonlimits import json_body_problem, json_depth

    assert json_depth(b'{"a": "[[[[[[[[", "b": "\\"[[[", "c": ["\\\\", [1]]}') == 3
    assert json_body_problem(b'{"a": "\\\\u0000"}') is None, "an escaped backslash before u0000 is not a NUL"
    assert json_body_problem(b'{"a": "\\u0000"}') is not None
    assert json_body_problem(DEEP, max_depth=64) is not None


def test_session_authenticated_predict_with_deep_json_is_a_400_naming_the_body(deployment, analyst_user):
    from apps.monitoring.models import PredictionLog

    response = session_client(analyst_user).generic(
        "POST", "/api/v1/deployments/price-direction/predict", deep_in(b'{"inputs": '), content_type="application/json"
    )
    assert response.status_code == 400, response.content[:300]
    assert response.json()["field"] == "body" and "nested deeper than 64" in response.json()["detail"]
    assert not PredictionLog.objects.exists()


def test_the_prediction_bodys_own_parser_refuses_deep_json_with_a_400():
    from apps.deployments.serving.inputs import InputError, loads_body

    with pytest.raises(InputError) as caught:
        loads_body(deep_in(b'{"inputs": '))
    assert caught.value.field == "body" and "nested deeper than 64" in caught.value.message


@pytest.mark.parametrize(
    "path,body",
    [
        ("/api/v1/experiments/", {"name": "seeded", "dataset": 1, "seed": 2**31}),
        ("/api/v1/experiments/", {"name": "seeded", "dataset": 1, "seed": 2**32 - 1}),
        ("/api/v1/runs/", {"experiment": 1, "seed": 2**31}),
        ("/api/v1/studies/", {"name": "seeded", "experiment": 1, "search_space": [], "seed": 2**31}),
    ],
)
def test_a_seed_past_the_32_bit_column_is_a_400_naming_seed_and_nothing_is_stored(staff_api, path, body):
    before = stored_counts()
    response = staff_api.post(path, body, format="json")
    assert response.status_code == 400, response.content
    assert "seed" in response.json(), response.json()
    assert stored_counts() == before


@pytest.mark.parametrize(
    "path,body,field",
    [
        ("/api/v1/studies/", {"name": "big", "experiment": 1, "search_space": [], "max_trials": 2**31}, "max_trials"),
        ("/api/v1/studies/", {"name": "big", "experiment": 1, "search_space": [], "parallelism": 2**15}, "parallelism"),
        ("/api/v1/studies/", {"name": "big", "experiment": 2**63, "search_space": []}, "experiment"),
        ("/api/v1/runs/", {"experiment": 2**63}, "experiment"),
        ("/api/v1/feature-specs/validate/", {"dataset": 2**63, "spec": {"version": 1, "steps": []}}, "dataset"),
        ("/api/v1/deployments/", {"name": "big", "model_version_id": 2**63}, "model_version_id"),
    ],
)
def test_integers_past_their_columns_are_a_400_naming_the_field(staff_api, path, body, field):
    response = staff_api.post(path, body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()


def test_a_largest_32_bit_seed_is_accepted_since_the_column_holds_it(staff_api):
    response = staff_api.post(
        "/api/v1/experiments/", {"name": "seeded", "dataset": 1, "seed": 2**31 - 1}, format="json"
    )
    assert "seed" not in response.json(), response.json()


@pytest.mark.parametrize("path", ["/api/v1/models/%00/", "/api/v1/models/a%00b/versions/", "/v2/models/%00"])
def test_a_nul_in_an_api_path_is_a_400_naming_the_path(staff_api, path):
    response = staff_api.get(path)
    assert response.status_code == 400, response.content
    body = response.json()
    assert (body.get("field") == "path") or body.get("error", "").startswith("path:"), body


def test_a_nul_in_the_query_string_is_a_400_naming_the_query(staff_api):
    response = staff_api.get("/api/v1/models/?q=a%00")
    assert response.status_code == 400 and response.json()["field"] == "query", response.content


def test_a_nul_in_a_request_header_is_a_400_naming_the_header_and_no_run_is_stored(staff_api):
    from apps.datasets.services import dataset_create
    from apps.training.services.experiments import experiment_create

    experiment = experiment_create(
        name="idem", dataset=dataset_create(name="idem", task="regression", target_column="y")
    )
    response = staff_api.post(
        "/api/v1/runs/", {"experiment": experiment.pk}, format="json", HTTP_IDEMPOTENCY_KEY="a\x00b"
    )
    assert response.status_code == 400 and response.json()["field"] == "Idempotency-Key", response.content
    assert not TrainingRun.objects.exists()


def test_a_nul_in_a_tags_key_or_value_is_a_400_naming_tags_and_where_and_the_tags_are_unchanged(champion, staff_api):
    url = f"/api/v1/models/{champion.registered_model.name}/versions/{champion.version}/"
    before = ModelVersion.objects.get(pk=champion.pk).tags
    for body, where in (
        (b'{"tags": {"a\\u0000": "x"}}', "tags['a\\u0000'] (a key)"),
        (b'{"tags": {"a": ["ok", "x\\u0000"]}}', "tags['a'][1]"),
    ):
        response = staff_api.generic("PATCH", url, body, content_type="application/json")
        assert response.status_code == 400, response.content
        assert list(response.json()) == ["tags"], response.json()
        assert response.json()["tags"][0].startswith(f"{where} holds a NUL character"), response.json()
    assert ModelVersion.objects.get(pk=champion.pk).tags == before


@pytest.mark.parametrize(
    "path,body,field",
    [
        (
            "/api/v1/experiments/",
            b'{"name": "x", "dataset": 1, "default_params": {"alpha\\u0000": 1}}',
            "default_params",
        ),
        ("/api/v1/runs/", b'{"experiment": 1, "params": {"alpha": "\\u0000"}}', "params"),
        ("/api/v1/studies/", b'{"name": "s", "experiment": 1, "search_space": [{"name": "a\\u0000"}]}', "search_space"),
        ("/api/v1/feature-specs/validate/", b'{"spec": {"steps": [{"op": "scale\\u0000"}]}}', "spec"),
        ("/api/v1/deployments/", b'{"name\\u0000": "x"}', "body"),
        ("/api/v1/experiments/", b'"\\u0000"', "body"),
    ],
)
def test_a_nul_in_any_json_key_or_string_is_a_400_naming_the_field_and_nothing_is_stored(staff_api, path, body, field):
    before = stored_counts()
    response = staff_api.generic("POST", path, body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert list(response.json()) == [field] and "NUL character" in response.json()[field][0], response.json()
    assert stored_counts() == before


def test_an_escaped_backslash_before_u0000_is_text_not_a_nul_and_is_stored(staff_api, champion):
    url = f"/api/v1/models/{champion.registered_model.name}/versions/{champion.version}/"
    response = staff_api.generic("PATCH", url, b'{"tags": {"path": "C:\\\\u0000"}}', content_type="application/json")
    assert response.status_code == 200, response.content
    assert ModelVersion.objects.get(pk=champion.pk).tags["path"] == "C:\\u0000"


def test_a_nul_in_a_form_field_or_key_is_a_400_naming_it(staff_api):
    from apps.datasets.models import Dataset

    response = staff_api.post(
        "/api/v1/datasets/",
        {"name": "ok", "task": "regression", "target_column": "y", "description": "a\x00b"},
        format="multipart",
    )
    assert response.status_code == 400 and "NUL character" in response.json()["description"][0], response.content
    response = staff_api.generic(
        "POST",
        "/api/v1/datasets/",
        "name=ok&task=regression&target_column=y&time%00=1",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 400 and "NUL character" in response.json()["body"][0], response.content
    assert not Dataset.objects.exists()


def test_a_json_body_past_the_upload_limit_is_a_413_in_json_and_nothing_is_stored(staff_api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = b'{"name": "big", "dataset": 1, "description": "' + b"x" * 2000 + b'"}'
    response = staff_api.generic("POST", "/api/v1/experiments/", body, content_type="application/json")
    assert response.status_code == 413, response.content
    assert response["Content-Type"] == "application/json" and "over 1,000 bytes" in response.json()["detail"]
    assert not Experiment.objects.exists()


def test_form_fields_past_the_upload_limit_are_a_413_in_json_not_an_html_400(staff_api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = staff_api.post(
        "/api/v1/datasets/",
        {"name": "big", "task": "regression", "target_column": "y", "description": "x" * 2000},
        format="multipart",
    )
    assert response.status_code == 413, response.content
    assert response["Content-Type"] == "application/json" and response.json()["detail"].startswith("body: ")


@pytest.mark.parametrize(
    "path,key",
    [
        ("/api/v1/no-such-thing/", "detail"),
        ("/api/v1/deployments/not%20a%20slug", "detail"),
        ("/v2/models/not%20a%20slug/ready", "error"),
    ],
)
def test_a_path_no_route_matches_is_a_json_404_in_the_apis_error_shape(staff_api, path, key):
    response = staff_api.get(path)
    assert response.status_code == 404 and response["Content-Type"] == "application/json", response.content
    assert response.json()[key].startswith("Not found"), response.json()


def test_an_html_4xx_outside_the_api_is_left_alone(staff_api):
    response = staff_api.get("/no-such-page/")
    assert response.status_code == 404 and not response["Content-Type"].startswith("application/json")


@pytest.mark.parametrize(
    "query,param", [("limit=abc", "limit"), ("limit=0", "limit"), ("offset=-1", "offset"), ("limit=%C2%B2", "limit")]
)
def test_a_page_limit_or_offset_that_is_not_a_valid_integer_is_a_400_naming_it(staff_api, query, param):
    for path in ("/api/v1/datasets/", "/api/v1/experiments/", "/api/v1/models/"):
        response = staff_api.get(f"{path}?{query}")
        assert response.status_code == 400 and param in response.json(), (path, response.content)


def test_a_page_limit_past_the_maximum_is_served_as_the_maximum(staff_api):
    response = staff_api.get("/api/v1/datasets/?limit=100000&offset=0")
    assert response.status_code == 200 and response.json()["count"] == 0


def test_an_unknown_primary_metric_is_a_400_naming_it_not_a_500(staff_api):
    from apps.datasets.services import dataset_create

    dataset = dataset_create(name="metrics", task="classification", target_column="y")
    response = staff_api.post(
        "/api/v1/experiments/", {"name": "m", "dataset": dataset.pk, "primary_metric": "0"}, format="json"
    )
    assert response.status_code == 400 and "primary_metric" in response.json(), response.content
    assert not Experiment.objects.exists()


def test_the_registry_service_refuses_nul_in_tags_from_any_caller(champion):
    from django.core.exceptions import ValidationError

    from apps.registry.services import model_version_update

    with pytest.raises(ValidationError) as caught:
        model_version_update(version=champion, tags={"ok": {"nested\x00": 1}})
    assert "tags" in caught.value.message_dict


def test_the_json_parser_itself_refuses_a_body_past_the_limit_before_parsing_it(settings):
    import io

    from apps.core.parsers import JSONParser, RequestTooLarge

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10
    with pytest.raises(RequestTooLarge) as caught:
        JSONParser().parse(io.BytesIO(b'{"a": "' + b"x" * 20 + b'"}'), "application/json", {})
    assert caught.value.status_code == 413 and "over 10 bytes" in str(caught.value.detail)
    assert JSONParser().parse(io.BytesIO(b'{"a": 1}'), "application/json", {}) == {"a": 1}


def test_an_accept_header_the_api_cannot_answer_is_a_json_406(staff_api):
    response = staff_api.get("/api/v1/datasets/", HTTP_ACCEPT="application/xml")
    assert response.status_code == 406 and response["Content-Type"] == "application/json", response.content
    assert "detail" in response.json()
