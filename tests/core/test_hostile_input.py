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
    return (Experiment.objects.count(), TrainingRun.objects.count(), TuningStudy.objects.count(),
            FeatureSpec.objects.count())


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
    response = staff_api.generic("POST", "/api/v1/experiments/", b'{"name": "a\\u0000", "dataset": 1}',
                                 content_type="application/json")
    assert response.status_code == 400 and "NUL" in response.json()["detail"], response.content
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

    response = session_client(analyst_user).generic("POST", "/api/v1/deployments/price-direction/predict",
                                                    deep_in(b'{"inputs": '), content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert response.json()["field"] == "body" and "nested deeper than 64" in response.json()["detail"]
    assert not PredictionLog.objects.exists()


def test_the_prediction_bodys_own_parser_refuses_deep_json_with_a_400():
    from apps.deployments.serving.inputs import InputError, loads_body

    with pytest.raises(InputError) as caught:
        loads_body(deep_in(b'{"inputs": '))
    assert caught.value.field == "body" and "nested deeper than 64" in caught.value.message


@pytest.mark.parametrize("path,body", [
    ("/api/v1/experiments/", {"name": "seeded", "dataset": 1, "seed": 2**31}),
    ("/api/v1/experiments/", {"name": "seeded", "dataset": 1, "seed": 2**32 - 1}),
    ("/api/v1/runs/", {"experiment": 1, "seed": 2**31}),
    ("/api/v1/studies/", {"name": "seeded", "experiment": 1, "search_space": [], "seed": 2**31}),
])
def test_a_seed_past_the_32_bit_column_is_a_400_naming_seed_and_nothing_is_stored(staff_api, path, body):
    before = stored_counts()
    response = staff_api.post(path, body, format="json")
    assert response.status_code == 400, response.content
    assert "seed" in response.json(), response.json()
    assert stored_counts() == before


@pytest.mark.parametrize("path,body,field", [
    ("/api/v1/studies/", {"name": "big", "experiment": 1, "search_space": [], "max_trials": 2**31}, "max_trials"),
    ("/api/v1/studies/", {"name": "big", "experiment": 1, "search_space": [], "parallelism": 2**15}, "parallelism"),
    ("/api/v1/studies/", {"name": "big", "experiment": 2**63, "search_space": []}, "experiment"),
    ("/api/v1/runs/", {"experiment": 2**63}, "experiment"),
    ("/api/v1/feature-specs/validate/", {"dataset": 2**63, "spec": {"version": 1, "steps": []}}, "dataset"),
    ("/api/v1/deployments/", {"name": "big", "model_version_id": 2**63}, "model_version_id"),
])
def test_integers_past_their_columns_are_a_400_naming_the_field(staff_api, path, body, field):
    response = staff_api.post(path, body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()


def test_a_largest_32_bit_seed_is_accepted_since_the_column_holds_it(staff_api):
    response = staff_api.post("/api/v1/experiments/", {"name": "seeded", "dataset": 1, "seed": 2**31 - 1}, format="json")
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


def test_a_nul_in_a_tags_key_or_value_is_a_400_and_the_tags_are_unchanged(champion, staff_api):
    url = f"/api/v1/models/{champion.registered_model.name}/versions/{champion.version}/"
    before = ModelVersion.objects.get(pk=champion.pk).tags
    for body in (b'{"tags": {"a\\u0000": "x"}}', b'{"tags": {"a": "x\\u0000"}}'):
        response = staff_api.generic("PATCH", url, body, content_type="application/json")
        assert response.status_code == 400, response.content
        assert "NUL" in response.json()["detail"] and response.json()["detail"].startswith("body: "), response.json()
    assert ModelVersion.objects.get(pk=champion.pk).tags == before


def test_the_registry_service_refuses_nul_in_tags_from_any_caller(champion):
    from django.core.exceptions import ValidationError

    from apps.registry.services import model_version_update

    with pytest.raises(ValidationError) as caught:
        model_version_update(version=champion, tags={"ok": {"nested\x00": 1}})
    assert "tags" in caught.value.message_dict
