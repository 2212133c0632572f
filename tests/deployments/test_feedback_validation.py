"""Ground truth is checked against what the version can answer, and recorded once per request."""

import pytest

from apps.monitoring.models import Feedback
from tests.deployments.conftest import SCALE_SPEC, classification_frame, train_version

PREDICT = "/api/v1/deployments/{name}/predict"
FEEDBACK = "/api/v1/deployments/{name}/feedback"


def predict(client, name, rows):
    response = client.post(PREDICT.format(name=name), {"dataframe_records": rows}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def rows(n=2, seed=7, columns=("f1", "f2", "f3")):
    return classification_frame(n=n, seed=seed)[list(columns)].to_dict(orient="records")


@pytest.fixture
def up_down(staff_user, django_capture_on_commit_callbacks):
    """A deployment "direction" serving a classifier whose classes are "down" and "up"."""
    from apps.deployments.services.model_deployment_service import deployment_create

    frame = classification_frame(n=300, seed=3)
    frame["label"] = frame["label"].map({0: "down", 1: "up"})
    version = train_version(
        dataset_name="direction",
        frame=frame,
        task="classification",
        target="label",
        spec=SCALE_SPEC,
        model_name="direction",
        user=staff_user,
    )
    assert sorted(version.signature["classes"]) == ["down", "up"]
    with django_capture_on_commit_callbacks(execute=True):
        deployment_create(name="direction", model_version=version, user=staff_user)
    return "direction"


@pytest.fixture
def regression_deployment(make_version, staff_user, django_capture_on_commit_callbacks):
    from apps.deployments.services.model_deployment_service import deployment_create

    version = make_version("regression", model_name="returns")
    with django_capture_on_commit_callbacks(execute=True):
        deployment_create(name="returns", model_version=version, user=staff_user)
    return "returns"


def send(client, name, body, raw=False):
    if raw:
        return client.generic("POST", FEEDBACK.format(name=name), body, content_type="application/json")
    return client.post(FEEDBACK.format(name=name), body, format="json")


def test_a_label_the_classifier_does_not_know_is_a_400_naming_the_field_and_the_allowed_classes(
    up_down, analyst_api, staff_api
):
    request_id = predict(analyst_api, up_down, rows())["request_id"]
    response = send(staff_api, up_down, {"request_id": request_id, "ground_truth": ["up", "sideways"]})
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["field"] == "feedback[0].ground_truth"
    assert "'sideways'" in body["detail"] and "allowed: 'down', 'up'" in body["detail"], body
    assert not Feedback.objects.exists()


def test_a_number_for_a_classifier_with_text_classes_is_refused_too(up_down, analyst_api, staff_api):
    request_id = predict(analyst_api, up_down, rows(n=1))["request_id"]
    response = send(staff_api, up_down, {"request_id": request_id, "ground_truth": 1})
    assert response.status_code == 400 and "allowed: 'down', 'up'" in response.json()["detail"], response.content


def test_integer_classes_refuse_a_label_outside_them(deployment, analyst_api, staff_api):
    request_id = predict(analyst_api, "price-direction", rows())["request_id"]
    response = send(staff_api, "price-direction", {"request_id": request_id, "ground_truth": [1, 2]})
    assert response.status_code == 400, response.content
    assert response.json()["field"] == "feedback[0].ground_truth" and "allowed: 0, 1" in response.json()["detail"]
    assert send(staff_api, "price-direction", {"request_id": request_id, "ground_truth": [1, 0]}).status_code == 200


def test_the_same_feedback_sent_again_is_a_200_that_changes_nothing(up_down, analyst_api, staff_api):
    request_id = predict(analyst_api, up_down, rows())["request_id"]
    first = send(staff_api, up_down, {"request_id": request_id, "ground_truth": ["up", "down"]})
    assert first.status_code == 200, first.content
    stored = Feedback.objects.values().get()
    again = send(staff_api, up_down, {"feedback": [{"request_id": request_id, "ground_truth": ["up", "down"]}]})
    assert again.status_code == 200, again.content
    assert again.json() == first.json()
    assert Feedback.objects.values().get() == stored, "not even received_at moves"


def test_different_feedback_for_the_same_request_is_a_409_and_the_first_stands(up_down, analyst_api, staff_api):
    request_id = predict(analyst_api, up_down, rows())["request_id"]
    assert send(staff_api, up_down, {"request_id": request_id, "ground_truth": ["up", "down"]}).status_code == 200
    stored = Feedback.objects.values().get()
    response = send(staff_api, up_down, {"request_id": request_id, "ground_truth": ["down", "down"]})
    assert response.status_code == 409, response.content
    body = response.json()
    assert body["field"] == "feedback[0].ground_truth"
    assert "already has ground truth ['up', 'down']" in body["detail"] and "refused" in body["detail"], body
    assert Feedback.objects.values().get() == stored


def test_a_batch_with_one_bad_or_conflicting_item_stores_none_of_it(up_down, analyst_api, staff_api):
    first, second, third = (predict(analyst_api, up_down, rows(n=1, seed=s))["request_id"] for s in (1, 2, 3))
    assert send(staff_api, up_down, {"request_id": first, "ground_truth": "up"}).status_code == 200
    bad_label = send(
        staff_api,
        up_down,
        {"feedback": [{"request_id": second, "ground_truth": "up"}, {"request_id": third, "ground_truth": "sideways"}]},
    )
    assert bad_label.status_code == 400 and bad_label.json()["field"] == "feedback[1].ground_truth", bad_label.content
    conflict = send(
        staff_api,
        up_down,
        {"feedback": [{"request_id": second, "ground_truth": "up"}, {"request_id": first, "ground_truth": "down"}]},
    )
    assert conflict.status_code == 409 and conflict.json()["field"] == "feedback[1].ground_truth", conflict.content
    assert [str(r) for r in Feedback.objects.values_list("prediction__request_id", flat=True)] == [first]


@pytest.mark.parametrize("truth", [b"NaN", b"Infinity", b'"abc"', b"true", b"null", b'"1.5"'])
def test_regression_ground_truth_must_be_a_finite_number(regression_deployment, analyst_api, staff_api, truth):
    request_id = predict(analyst_api, regression_deployment, rows(n=1, columns=("f1", "f2")))["request_id"]
    body = b'{"request_id": "%s", "ground_truth": %s}' % (request_id.encode(), truth)
    response = send(staff_api, regression_deployment, body, raw=True)
    assert response.status_code == 400, (truth, response.content)
    assert response.json()["field"] == "feedback[0].ground_truth" and "finite number" in response.json()["detail"]
    assert not Feedback.objects.exists()


def test_regression_feedback_repeats_idempotently_and_conflicts_on_another_value(
    regression_deployment, analyst_api, staff_api
):
    request_id = predict(analyst_api, regression_deployment, rows(n=1, columns=("f1", "f2")))["request_id"]
    assert send(staff_api, regression_deployment, {"request_id": request_id, "ground_truth": 1.5}).status_code == 200
    assert send(staff_api, regression_deployment, {"request_id": request_id, "ground_truth": [1.5]}).status_code == 200
    assert send(staff_api, regression_deployment, {"request_id": request_id, "ground_truth": 1.25}).status_code == 409
    assert Feedback.objects.get().ground_truth == [1.5]
