"""MLflow scoring-server compatibility: each deployment answers MLflow's own paths (`…/invocations`,
`…/ping`, `…/version`), reads `text/csv` as well as MLflow's JSON formats, and refuses in MLflow's
error shape (`error_code`, `message`) beside the portal's (`detail`, `field`). `/invocations` is
answered alike by the ASGI fast path (token POSTs) and the DRF view, with /predict's predictions."""

import http.client
import io
import json

import pandas as pd
import pytest
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator
from django.core.asgi import get_asgi_application
from django.test import Client

from apps.core.services import api_token_create
from apps.deployments.serving.fastpath import PredictionFastPath
from apps.deployments.services.model_deployment_service import deployment_create, deployment_set_traffic
from apps.registry.models import ModelVersion

from .conftest import WebProcess, classification_frame, free_port, history_frame

# The fast path reads tokens and tables through database_sync_to_async, and the web process reads
# the database on its own connection: both need committed data.
pytestmark = pytest.mark.django_db(transaction=True)

NAME = "price-direction"
BASE = f"/api/v1/deployments/{NAME}"
FEATURES = ["f1", "f2", "f3"]
JSON = "application/json"
CSV = "text/csv"


@pytest.fixture
def token(analyst_user):
    return api_token_create(user=analyst_user, name="mlflow")[1]


@pytest.fixture
def served(make_version, staff_user):
    version = make_version(seed=0)
    deployment_create(name=NAME, model_version=version, user=staff_user)
    return version


@pytest.fixture
def fast_app():
    return PredictionFastPath(get_asgi_application())


def rows_frame(n=5, seed=3) -> pd.DataFrame:
    return classification_frame(n=n, seed=seed)[FEATURES]


def to_csv(frame: pd.DataFrame, index=True) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=index)
    return buffer.getvalue().encode()


def encoded(body) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


def via_fast_path(app, path, body, token, content_type=JSON, method="POST"):
    headers = [(b"host", b"testserver"), (b"authorization", f"Bearer {token}".encode())]
    if content_type:
        headers.append((b"content-type", content_type.encode()))

    async def run():
        return await HttpCommunicator(app, method, path, body=encoded(body), headers=headers).get_response(timeout=30)

    response = async_to_sync(run)()
    return response["status"], json.loads(response["body"])


def via_drf(path, body, token, content_type=JSON):
    response = Client().post(path, data=encoded(body), content_type=content_type, HTTP_AUTHORIZATION=f"Bearer {token}")
    return response.status_code, response.json()


def get(path, token=None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    response = Client().get(path, **headers)
    return response.status_code, response.json()


def comparable(body: dict) -> dict:
    return {k: v for k, v in body.items() if k != "request_id"}


def both_paths(app, path, body, token, content_type=JSON):
    """The fast path's answer, after checking that the DRF view gives the same one."""
    fast = via_fast_path(app, path, body, token, content_type)
    drf = via_drf(path, body, token, content_type)
    assert (fast[0], comparable(fast[1])) == (drf[0], comparable(drf[1])), (path, body)
    return fast


def test_invocations_answer_every_mlflow_format_and_csv_with_the_predictions_of_predict(served, token, fast_app):
    frame = rows_frame()
    records = frame.to_dict(orient="records")
    status, reference = both_paths(fast_app, f"{BASE}/predict", {"dataframe_records": records}, token)
    assert status == 200 and len(reference["predictions"]) == 5
    bodies = [
        ({"dataframe_split": frame.to_dict(orient="split")}, JSON),  # what MLflow's client sends, "index" included
        ({"dataframe_records": records}, JSON),
        ({"instances": records}, JSON),
        ({"inputs": {c: frame[c].tolist() for c in FEATURES}}, JSON),
        ({"inputs": frame.values.tolist()}, JSON),
        (to_csv(frame), CSV),  # pandas' default: the index as an unnamed first column
        (to_csv(frame, index=False), "text/csv; charset=utf-8"),
        (b"\xef\xbb\xbf" + to_csv(frame, index=False).replace(b"\n", b"\r\n") + b"\r\n", CSV),  # BOM, CRLF, blank line
    ]
    for body, content_type in bodies:
        for path in (f"{BASE}/invocations", f"{BASE}/predict"):
            status, answer = both_paths(fast_app, path, body, token, content_type)
            assert status == 200, (body, answer)
            assert answer["predictions"] == reference["predictions"], body
            assert answer["rows"] == reference["rows"] and answer["model_version"] == reference["model_version"]


def test_a_csv_body_for_a_history_model_keeps_text_and_dates_as_text_and_matches_json(
    make_version, staff_user, token, fast_app
):
    version = make_version("history", model_name="ticker-direction")
    deployment_create(name="ticker-direction", model_version=version, user=staff_user)
    needed = version.signature["history_rows"]
    frame = history_frame().groupby("ticker").tail(needed)[["date", "ticker", "x"]]
    path = "/api/v1/deployments/ticker-direction/invocations"
    status, from_json = both_paths(fast_app, path, {"dataframe_records": frame.to_dict(orient="records")}, token)
    assert status == 200 and from_json["rows"] == ["AAA", "BBB"]
    status, from_csv = both_paths(fast_app, path, to_csv(frame, index=False), token, CSV)
    assert status == 200 and comparable(from_csv) == comparable(from_json)


@pytest.mark.parametrize(
    "body, field, words",
    [
        (b"f1,f2,f3\n0.1,abc,0.3\n", "f2", 'row 0: expected a number, got "abc"'),
        (b"f1,f2,f3\n0.1,0.2,0.3\n0.1,,0.3\n", "f2", "row 1: the cell is empty"),
        (b"f1,f2,f3\n0.1,0.2,0.3\n0.1,0.2\n", "rows[1]", "line 3: expected 3 values (f1, f2, f3), got 2"),
        (b"f1,f2,f1\n1,2,3\n", "header", "column 'f1' appears twice"),
        (b"f1,,f3\n1,2,3\n", "header", "column 1 of the header row has no name"),
        (b"f1,f2\n1,2\n", "f3", "missing column"),
        (b"f1,f2,f3,f9\n1,2,3,4\n", "f9", "unexpected column"),
        (b"f1,f2,f3\n1,nan,3\n", "f2", "row 0: nan is not allowed"),
        (b"f1,f2,f3\n1,1" + b"0" * 400 + b",3\n", "f2", "row 0: the number is too large"),
        (b"f1,f2,f3\n", "rows", "no rows were sent"),
        (b'f1,f2,f3\n"1"x,2,3\n', "body", "malformed CSV at line 2"),
        (b"f1,f2,f3\n1,\xff,3\n", "body", "not UTF-8"),
        (b"", "body", "the request body is empty"),
        (b"\xef\xbb\xbf", "body", "the CSV body is empty"),
    ],
)
def test_a_bad_csv_body_is_a_400_naming_the_column_or_row_on_both_paths(served, token, fast_app, body, field, words):
    status, answer = both_paths(fast_app, f"{BASE}/invocations", body, token, CSV)
    assert status == 400 and answer["field"] == field and words in answer["detail"], answer
    assert answer["error_code"] == "BAD_REQUEST" and answer["message"] == answer["detail"]


def test_params_pass_probabilities_through_and_refuse_anything_else_as_an_invalid_parameter_value(
    served, token, fast_app
):
    records = rows_frame(n=2).to_dict(orient="records")
    status, answer = both_paths(
        fast_app, f"{BASE}/invocations", {"dataframe_records": records, "params": {"probabilities": True}}, token
    )
    assert status == 200 and len(answer["probabilities"]) == 2 and answer["classes"] == [0, 1]
    refusals = [
        ({"temperature": 0.5}, "params.temperature", "take no prediction-time parameters"),
        ({"probabilities": "yes"}, "params.probabilities", "expected true or false"),
        ([1, 2], "params", "expected an object"),
    ]
    for params, field, words in refusals:
        status, answer = both_paths(
            fast_app, f"{BASE}/invocations", {"dataframe_records": records, "params": params}, token
        )
        assert status == 400 and answer["field"] == field and words in answer["message"], answer
        assert answer["error_code"] == "INVALID_PARAMETER_VALUE" and answer["detail"] == answer["message"]
    status, answer = both_paths(
        fast_app, f"{BASE}/invocations", {"dataframe_records": records, "params": {"top_k": 3}}, token
    )
    assert "probabilities" in answer["message"], "the refusal names the parameters this server takes"


def test_errors_carry_mlflows_error_code_and_message_beside_detail_on_both_paths(
    served, token, fast_app, outsider_user
):
    record = rows_frame(n=1).to_dict(orient="records")
    path = f"{BASE}/invocations"
    cases = [
        (path, b"{broken", JSON, 400, "BAD_REQUEST"),
        (path, {"dataframe_records": record, "extra": 1}, JSON, 400, "BAD_REQUEST"),
        (path, b"PAR1....", "application/vnd.apache.parquet", 415, "BAD_REQUEST"),
        ("/api/v1/deployments/nope/invocations", {"dataframe_records": record}, JSON, 404, "RESOURCE_DOES_NOT_EXIST"),
    ]
    for case_path, body, content_type, status, code in cases:
        answer_status, answer = both_paths(fast_app, case_path, body, token, content_type)
        assert (answer_status, answer["error_code"]) == (status, code), answer
        assert answer["message"] == answer["detail"] and answer["message"]
    for who, status, code in (
        ("mlp_nope_nope", 401, "UNAUTHENTICATED"),
        (api_token_create(user=outsider_user)[1], 403, "PERMISSION_DENIED"),
    ):
        fast = via_fast_path(fast_app, path, {"dataframe_records": record}, who)
        assert fast == via_drf(path, {"dataframe_records": record}, who)
        assert fast[0] == status and fast[1]["error_code"] == code and fast[1]["message"] == fast[1]["detail"]


def test_a_client_over_its_rate_gets_request_limit_exceeded_on_both_paths(served, token, fast_app, settings):
    record = rows_frame(n=1).to_dict(orient="records")
    path = f"{BASE}/invocations"
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "predict": "1/minute"},
    }
    statuses = [via_fast_path(fast_app, path, {"dataframe_records": record}, token) for _ in range(2)]
    assert [s for s, _ in statuses] == [200, 429] and statuses[1][1]["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    status, answer = via_drf(path, {"dataframe_records": record}, token)
    assert status == 429 and answer["error_code"] == "REQUEST_LIMIT_EXCEEDED" and "throttled" in answer["message"]


def test_ping_answers_200_when_the_deployment_can_serve_and_503_when_it_cannot(served, token, analyst_user):
    assert get(f"{BASE}/ping", token) == (200, {"deployment": NAME, "ready": True, "unavailable": []})
    status, answer = get("/api/v1/deployments/nope/ping", token)
    assert status == 404 and answer["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    # A version whose stored artifact no longer matches its registered sha256 cannot be loaded.
    ModelVersion.objects.filter(pk=served.pk).update(artifact_sha256="0" * 64)
    from apps.deployments.serving.state import serving_state

    serving_state.reset()
    status, answer = get(f"{BASE}/ping", token)
    assert status == 503 and answer["error_code"] == "TEMPORARILY_UNAVAILABLE" and answer["message"] == answer["detail"]


def test_ping_and_version_tell_an_anonymous_caller_nothing_about_which_deployments_exist(served):
    for path in (
        f"{BASE}/ping",
        "/api/v1/deployments/nope/ping",
        f"{BASE}/version",
        "/api/v1/deployments/nope/version",
    ):
        status, answer = get(path)
        assert status == 401 and answer["error_code"] == "UNAUTHENTICATED", (path, answer)


def test_version_lists_the_versions_served_with_their_weights(served, make_version, staff_user, token):
    from apps.deployments.models import Deployment

    challenger = make_version(seed=1)
    deployment = Deployment.objects.get(name=NAME)
    deployment_set_traffic(
        deployment=deployment,
        user=staff_user,
        allocations=[{"model_version": served, "weight": 90}, {"model_version": challenger, "weight": 10}],
    )
    status, answer = get(f"{BASE}/version", token)
    assert status == 200 and answer["deployment"] == NAME and answer["model_name"] == NAME
    assert [(v["version"], v["role"], v["weight"], v["shadow"]) for v in answer["versions"]] == [
        (str(served.version), "champion", 90.0, False),
        (str(challenger.version), "challenger", 10.0, False),
    ]
    assert (
        answer["versions"][0]["framework"] == "sklearn"
        and answer["generation"] == Deployment.objects.get(name=NAME).generation
    )
    status, answer = get("/api/v1/deployments/nope/version", token)
    assert status == 404 and answer["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_a_real_web_process_answers_an_mlflow_style_client_on_invocations_ping_and_version(served, token):
    """Plain HTTP, as MLflow's scoring client sends it (requests-style JSON and CSV bodies), through
    uvicorn, the body limit and the fast path."""
    web = WebProcess(free_port()).start()
    try:
        frame = rows_frame(n=3)

        def call(method, path, body=None, content_type=None):
            connection = http.client.HTTPConnection("127.0.0.1", web.port, timeout=60)
            headers = {"Authorization": f"Bearer {token}", **({"Content-Type": content_type} if content_type else {})}
            connection.request(method, f"{BASE}{path}", body=body, headers=headers)
            response = connection.getresponse()
            status, data = response.status, json.loads(response.read())
            connection.close()
            return status, data

        status, from_json = call(
            "POST", "/invocations", json.dumps({"dataframe_split": frame.to_dict(orient="split")}).encode(), JSON
        )
        assert status == 200, from_json
        status, from_csv = call("POST", "/invocations", to_csv(frame), CSV)
        assert status == 200 and from_csv["predictions"] == from_json["predictions"]
        assert call("GET", "/ping")[0] == 200
        status, version = call("GET", "/version")
        assert status == 200 and [v["weight"] for v in version["versions"]] == [100.0]
        status, refused = call("POST", "/invocations", b"f1,f2\n1,2\n", CSV)
        assert status == 400 and refused["error_code"] == "BAD_REQUEST" and refused["field"] == "f3"
    finally:
        web.stop()
