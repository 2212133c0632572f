"""Class probabilities: MLflow's `params.probabilities` and the V2 "probabilities" output, checked
against the in-memory model, refused for regression, and kept in the prediction logs."""

import numpy as np
import pandas as pd
import pytest

from apps.deployments.serving.predict import predictor
from apps.monitoring.models import PredictionLog
from apps.monitoring.services.logbuffer import prediction_logs_flush
from apps.registry.loading import load_model_version

from .conftest import classification_frame, record

PREDICT = "/api/v1/deployments/price-direction/predict"
INFER = "/v2/models/price-direction/infer"
COLUMNS = ("f1", "f2", "f3")
ASK = {"params": {"probabilities": True}}


def rows_of(n=6, seed=11):
    return classification_frame(n=n, seed=seed)[list(COLUMNS)].to_dict(orient="records")


def mlflow_bodies(rows):
    return {
        "dataframe_split": {
            "dataframe_split": {"columns": list(COLUMNS), "data": [[r[c] for c in COLUMNS] for r in rows]}
        },
        "dataframe_records": {"dataframe_records": rows},
        "instances": {"instances": rows},
        "inputs": {"inputs": {c: [r[c] for r in rows] for c in COLUMNS}},
    }


def v2_body(rows, **extra):
    return {
        "inputs": [
            {"name": c, "shape": [len(rows)], "datatype": "FP64", "data": [r[c] for r in rows]} for c in COLUMNS
        ],
        **extra,
    }


def v2_output(data, name):
    return next(o for o in data["outputs"] if o["name"] == name)


def test_every_mlflow_format_and_v2_give_the_same_probabilities_which_sum_to_one_and_whose_argmax_is_the_label(
    deployment, champion, analyst_api
):
    rows = rows_of()
    loaded = load_model_version(champion)
    expected, _ = loaded.predict_proba_raw(pd.DataFrame(rows))
    classes = champion.signature["classes"]
    answers = []
    for name, body in mlflow_bodies(rows).items():
        response = analyst_api.post(PREDICT, {**body, **ASK}, format="json")
        assert response.status_code == 200, (name, response.content)
        data = response.json()
        assert data["classes"] == classes, name
        answers.append(data["probabilities"])
        assert data["predictions"] == loaded.predict_raw(pd.DataFrame(rows))[0], (
            "asking for probabilities changes no label"
        )
    response = analyst_api.post(
        INFER, v2_body(rows, outputs=[{"name": "predictions"}, {"name": "probabilities"}]), format="json"
    )
    assert response.status_code == 200, response.content
    data = response.json()
    tensor = v2_output(data, "probabilities")
    assert tensor["datatype"] == "FP32" and tensor["shape"] == [len(rows), len(classes)]
    assert tensor["parameters"] == {"classes": classes}
    v2_rows = np.asarray(tensor["data"]).reshape(tensor["shape"]).tolist()
    assert all(answer == v2_rows for answer in answers), "one set of numbers whatever the protocol"
    probabilities = np.asarray(v2_rows)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    assert v2_output(data, "predictions")["data"] == [classes[i] for i in probabilities.argmax(axis=1)]


def test_without_asking_the_answers_are_as_before_and_predict_is_an_alias_of_predictions(deployment, analyst_api):
    rows = rows_of(n=3)
    data = analyst_api.post(PREDICT, {"instances": rows}, format="json").json()
    assert set(data) == {"predictions", "model_version", "model_name", "request_id", "rows"}
    data = analyst_api.post(PREDICT, {"instances": rows, "params": {"probabilities": False}}, format="json").json()
    assert "probabilities" not in data
    data = analyst_api.post(INFER, v2_body(rows), format="json").json()
    assert [o["name"] for o in data["outputs"]] == ["predictions", "rows"]
    data = analyst_api.post(
        INFER, v2_body(rows, outputs=[{"name": "probabilities"}, {"name": "predict"}]), format="json"
    ).json()
    assert [o["name"] for o in data["outputs"]] == ["probabilities", "predict"]
    probabilities = np.asarray(data["outputs"][0]["data"]).reshape(3, -1)
    assert data["outputs"][1]["data"] == [
        data["outputs"][0]["parameters"]["classes"][i] for i in probabilities.argmax(axis=1)
    ]


def test_a_regression_model_asked_for_probabilities_is_a_400_naming_the_field(
    make_version, staff_user, analyst_api, django_capture_on_commit_callbacks
):
    from apps.deployments.services.model_deployment_service import deployment_create

    version = make_version("regression")
    with django_capture_on_commit_callbacks(execute=True):
        deployment_create(name="price-direction", model_version=version, user=staff_user)
    body = {"instances": [{"f1": 0.1, "f2": 0.2}], **ASK}
    response = analyst_api.post(PREDICT, body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["field"] == "params.probabilities" and "regression" in response.json()["detail"]
    rows = [{"f1": 0.1, "f2": 0.2}]
    v2 = {
        "inputs": [{"name": c, "shape": [1], "datatype": "FP64", "data": [rows[0][c]]} for c in ("f1", "f2")],
        "outputs": [{"name": "probabilities"}],
    }
    response = analyst_api.post(INFER, v2, format="json")
    assert response.status_code == 400 and set(response.json()) == {"error"}
    assert response.json()["error"].startswith("outputs:") and "regression" in response.json()["error"]
    assert analyst_api.post(PREDICT, {"instances": rows}, format="json").status_code == 200
    metadata = analyst_api.get("/v2/models/price-direction").json()
    assert [o["name"] for o in metadata["outputs"]] == ["predictions", "rows"]
    prediction_logs_flush()
    assert list(PredictionLog.objects.order_by("served_at").values_list("status", "probabilities")) == [
        ("client_error", None),
        ("client_error", None),
        ("ok", None),
    ]


@pytest.mark.parametrize(
    "params, field",
    [
        ({"probabilities": True, "temperature": 2}, "params.temperature"),
        ({"probabilities": "yes"}, "params.probabilities"),
        ({"probabilities": 1}, "params.probabilities"),
        (["probabilities"], "params"),
    ],
)
def test_unknown_or_malformed_params_are_a_400_naming_the_key(deployment, analyst_api, params, field):
    response = analyst_api.post(PREDICT, {"instances": [record()], "params": params}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field


def test_an_unknown_or_repeated_v2_output_is_a_400_in_the_protocols_error_shape(deployment, analyst_api):
    for outputs, named in (
        ([{"name": "probabilities"}, {"name": "logits"}], "'logits'"),
        ([{"name": "predictions"}, {"name": "predict"}], "'predict'"),
        ([{"nom": "probabilities"}], "{name}"),
    ):
        response = analyst_api.post(INFER, v2_body([record()], outputs=outputs), format="json")
        assert response.status_code == 400, response.content
        assert set(response.json()) == {"error"} and response.json()["error"].startswith("outputs:")
        assert named in response.json()["error"]


def test_v2_metadata_lists_the_probabilities_output_with_one_column_per_class(deployment, champion, analyst_api):
    metadata = analyst_api.get("/v2/models/price-direction").json()
    classes = champion.signature["classes"]
    assert metadata["outputs"] == [
        {"name": "predictions", "datatype": "INT64", "shape": [-1]},
        {"name": "rows", "datatype": "BYTES", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(classes)]},
    ]
    assert metadata["parameters"]["classes"] == classes


def test_prediction_logs_keep_every_classifier_answers_probabilities_even_when_the_client_did_not_ask(
    deployment, two_versions, staff_user, analyst_api, django_capture_on_commit_callbacks
):
    from apps.deployments.services.model_deployment_service import deployment_set_traffic

    champion, challenger = two_versions
    with django_capture_on_commit_callbacks(execute=True):
        deployment_set_traffic(
            deployment=deployment,
            user=staff_user,
            allocations=[
                {"model_version": champion, "weight": 100},
                {"model_version": challenger, "weight": 0, "shadow": True},
            ],
        )
    rows = rows_of(n=4)
    asked = analyst_api.post(PREDICT, {"dataframe_records": rows, **ASK}, format="json").json()
    unasked = analyst_api.post(PREDICT, {"dataframe_records": rows}, format="json").json()
    assert predictor.shadow_drain()
    prediction_logs_flush()
    served = {str(log.request_id): log for log in PredictionLog.objects.filter(shadow=False)}
    assert served[asked["request_id"]].probabilities == asked["probabilities"]
    assert served[unasked["request_id"]].probabilities == asked["probabilities"], "the same rows, the same numbers"
    assert served[unasked["request_id"]].output == unasked["predictions"]
    shadow = PredictionLog.objects.filter(shadow=True, model_version=challenger)
    assert shadow.count() == 2
    expected, _ = load_model_version(challenger).predict_proba_raw(pd.DataFrame(rows))
    for log in shadow:
        np.testing.assert_allclose(log.probabilities, expected, rtol=1e-6, atol=1e-12)


def test_the_openapi_schema_documents_the_probability_option_outputs_and_monitoring_fields(analyst_api):
    schema = analyst_api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    components = schema["components"]["schemas"]

    def component(path, method, *keys):
        node = schema["paths"][path][method]
        for key in keys:
            node = node[key]
        return components[node["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]]

    request = component("/api/v1/deployments/{name}/predict", "post", "requestBody")
    params = components[request["properties"]["params"]["allOf"][0]["$ref"].rsplit("/", 1)[-1]]
    assert params["properties"]["probabilities"]["type"] == "boolean"
    response = component("/api/v1/deployments/{name}/predict", "post", "responses", "200")
    assert {"probabilities", "classes"} <= set(response["properties"])
    infer = component("/v2/models/{name}/infer", "post", "requestBody")
    assert (
        "probabilities"
        in components[infer["properties"]["outputs"]["items"]["$ref"].rsplit("/", 1)[-1]]["properties"]["name"][
            "description"
        ]
    )
    summary = component("/api/v1/monitoring/deployments/{name}/summary", "get", "responses", "200")
    version = components[summary["properties"]["versions"]["items"]["$ref"].rsplit("/", 1)[-1]]
    assert {"log_loss", "calibration"} <= set(version["properties"])
