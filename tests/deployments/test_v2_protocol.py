"""The Open Inference Protocol V2 with the standard client: tritonclient.http against a real web
process, in its default binary encoding and in JSON, giving the REST path's predictions; versioned
routes; JSON errors everywhere under /v2; health probes without a token. And the binary tensor data
extension answered alike by the ASGI fast path and the DRF view."""

import http.client
import json

import numpy as np
import pytest
import tritonclient.http as triton
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator
from django.core.asgi import get_asgi_application
from django.test import Client
from tritonclient.utils import InferenceServerException

from apps.core.services import api_token_create
from apps.deployments.services.model_deployment_service import (
    deployment_create,
    deployment_set_traffic,
)
from apps.deployments.serving.fastpath import PredictionFastPath
from apps.monitoring.models import PredictionLog
from apps.monitoring.services.logbuffer import prediction_logs_flush

from .conftest import (
    WebProcess,
    classification_frame,
    free_port,
    history_frame,
    wait_until,
)

# The web process (and the fast path's database_sync_to_async) read committed data only.
pytestmark = pytest.mark.django_db(transaction=True)

FEATURES = ("f1", "f2", "f3")
HEADER = "Inference-Header-Content-Length"


@pytest.fixture
def web():
    process = WebProcess(free_port()).start()
    yield process
    process.stop()


@pytest.fixture
def token(analyst_user):
    return api_token_create(user=analyst_user, name="v2")[1]


def auth(token: str) -> dict:
    """A new dict per call: tritonclient writes Inference-Header-Content-Length into the one it is given."""
    return {"Authorization": f"Bearer {token}"}


def request(port: int, method: str, path: str, body: bytes | None = None, headers=None) -> tuple[int, dict, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def rest_predict(port: int, token: str, name: str, records: list, **extra) -> dict:
    status, _, data = request(
        port,
        "POST",
        f"/api/v1/deployments/{name}/predict",
        json.dumps({"dataframe_records": records, **extra}).encode(),
        {**auth(token), "Content-Type": "application/json"},
    )
    assert status == 200, data
    return json.loads(data)


def tensors(columns: dict, *, binary: bool) -> list:
    inputs = []
    for name, values in columns.items():
        array = np.array(values, dtype=object if isinstance(values[0], str) else np.float64)
        tensor = triton.InferInput(name, list(array.shape), "BYTES" if array.dtype == object else "FP64")
        inputs.append(tensor.set_data_from_numpy(array, binary_data=binary))
    return inputs


def texts(array) -> list[str]:
    """A BYTES output as text: tritonclient gives bytes for binary data, str for JSON."""
    return [v.decode() if isinstance(v, bytes) else v for v in array.tolist()]


def json_outputs(*names) -> list:
    return [triton.InferRequestedOutput(name, binary_data=False) for name in names]


def columns_of(records: list, names) -> dict:
    return {name: [r[name] for r in records] for name in names}


def test_tritonclient_reads_metadata_and_infers_in_binary_and_json_with_the_predictions_of_the_rest_path(
    web, token, make_version, staff_user
):
    plain = make_version(seed=0)
    history = make_version("history", model_name="ticker-direction")
    deployment_create(name="price-direction", model_version=plain, user=staff_user)
    deployment_create(name="ticker-direction", model_version=history, user=staff_user)
    client = triton.InferenceServerClient(url=f"127.0.0.1:{web.port}")

    server = client.get_server_metadata(headers=auth(token))
    assert server["name"] == "mlops-portal" and "binary_tensor_data" in server["extensions"]
    metadata = client.get_model_metadata("price-direction", headers=auth(token))
    assert metadata["versions"] == [str(plain.version)]
    assert [i["name"] for i in metadata["inputs"]] == list(FEATURES)
    assert client.is_model_ready("price-direction", headers=auth(token))

    records = classification_frame(n=5, seed=7)[list(FEATURES)].to_dict(orient="records")
    expected = rest_predict(web.port, token, "price-direction", records, params={"probabilities": True})
    columns = columns_of(records, FEATURES)

    result = client.infer("price-direction", tensors(columns, binary=True), headers=auth(token))
    response = result.get_response()
    # tritonclient's defaults: binary inputs, and binary outputs asked for with binary_data_output.
    assert all("binary_data_size" in o["parameters"] and "data" not in o for o in response["outputs"])
    assert result.as_numpy("predictions").tolist() == expected["predictions"]
    assert texts(result.as_numpy("rows")) == expected["rows"]
    assert response["model_version"] == expected["model_version"]

    result = client.infer(
        "price-direction",
        tensors(columns, binary=False),
        outputs=json_outputs("predictions", "rows"),
        headers=auth(token),
    )
    assert all("data" in o for o in result.get_response()["outputs"])
    assert result.as_numpy("predictions").tolist() == expected["predictions"]

    result = client.infer(
        "price-direction",
        tensors(columns, binary=True),
        outputs=[triton.InferRequestedOutput("probabilities")],
        headers=auth(token),
    )
    probabilities = result.as_numpy("probabilities")
    assert probabilities.dtype == np.float32 and probabilities.shape == (5, 2)
    np.testing.assert_allclose(probabilities, np.array(expected["probabilities"], dtype=np.float32), rtol=1e-6)

    # A model with history: its last rows per ticker, text columns as BYTES (length-prefixed when binary).
    needed = history.signature["history_rows"]
    latest = history_frame(seed=0).groupby("ticker").tail(needed)[["date", "ticker", "x"]].to_dict(orient="records")
    expected = rest_predict(web.port, token, "ticker-direction", latest)
    metadata = client.get_model_metadata("ticker-direction", headers=auth(token))
    assert metadata["parameters"]["history_rows"] == needed
    assert {i["name"]: i["datatype"] for i in metadata["inputs"]} == {"date": "BYTES", "ticker": "BYTES", "x": "FP64"}
    columns = columns_of(latest, ("date", "ticker", "x"))
    for binary in (True, False):
        outputs = None if binary else json_outputs("predictions", "rows")
        result = client.infer("ticker-direction", tensors(columns, binary=binary), outputs=outputs, headers=auth(token))
        assert result.as_numpy("predictions").tolist() == expected["predictions"], binary
        assert texts(result.as_numpy("rows")) == expected["rows"] == ["AAA", "BBB"]

    # Probes for a load balancer or Kubernetes need no token; everything about models does.
    assert client.is_server_live() and client.is_server_ready()
    for path in ("/v2/health/live", "/v2/health/ready"):
        assert request(web.port, "GET", path)[0] == 200
    assert not client.is_model_ready("price-direction")
    with pytest.raises(InferenceServerException) as refused:
        client.get_model_metadata("price-direction")
    assert refused.value.status() == "401"
    with pytest.raises(InferenceServerException) as refused:
        client.get_server_metadata()
    assert refused.value.status() == "401"
    client.close()


def test_a_versioned_route_serves_that_version_outside_the_traffic_split_and_logs_it(
    web, token, make_version, staff_user
):
    champion, challenger = make_version(seed=0), make_version(seed=1)
    deployment = deployment_create(name="price-direction", model_version=champion, user=staff_user)
    deployment_set_traffic(
        deployment=deployment,
        user=staff_user,
        allocations=[{"model_version": champion, "weight": 90}, {"model_version": challenger, "weight": 10}],
    )
    client = triton.InferenceServerClient(url=f"127.0.0.1:{web.port}")
    columns = columns_of(classification_frame(n=3, seed=5)[list(FEATURES)].to_dict(orient="records"), FEATURES)

    # A routing key the split sends to the champion...
    key = next(
        k
        for k in (f"customer-{i}" for i in range(200))
        if client.infer(
            "price-direction", tensors(columns, binary=True), headers=auth(token), parameters={"routing_key": k}
        ).get_response()["model_version"]
        == str(champion.version)
    )
    # ...still reaches the challenger when the request names it.
    for version in (challenger, champion):
        label = str(version.version)
        result = client.infer(
            "price-direction",
            tensors(columns, binary=True),
            model_version=label,
            headers=auth(token),
            parameters={"routing_key": key},
        )
        response = result.get_response()
        assert response["model_version"] == label
        assert client.is_model_ready("price-direction", model_version=label, headers=auth(token))
        metadata = client.get_model_metadata("price-direction", model_version=label, headers=auth(token))
        assert metadata["versions"] == [label] and metadata["parameters"]["model_version"] == label
        prediction_logs_flush()
        request_id = response["parameters"]["request_id"]
        log = wait_until(lambda request_id=request_id: PredictionLog.objects.filter(request_id=request_id).first())
        assert log.model_version_id == version.pk and not log.shadow

    served = f"serves versions {champion.version}, {challenger.version}"
    with pytest.raises(InferenceServerException) as refused:
        client.infer("price-direction", tensors(columns, binary=True), model_version="99", headers=auth(token))
    assert refused.value.status() == "404" and served in refused.value.message()
    for path in ("/v2/models/price-direction/versions/99", "/v2/models/price-direction/versions/99/ready"):
        status, response_headers, data = request(web.port, "GET", path, headers=auth(token))
        assert status == 404 and response_headers["content-type"] == "application/json"
        assert served in json.loads(data)["error"]
    client.close()


def test_every_error_under_v2_is_json_with_an_error_field(web, token, make_version, staff_user):
    deployment_create(name="price-direction", model_version=make_version(seed=0), user=staff_user)
    headers = auth(token)
    body, header_length = triton.InferenceServerClient.generate_request_body(
        tensors({"f1": [0.1], "f2": [0.2], "f3": [0.3]}, binary=True)
    )
    cases = [
        ("GET", "/v2/nothing-here", None, {}, 404),
        ("GET", "/v2/models/nope", None, {}, 404),
        ("POST", "/v2/models/nope/infer", body, {HEADER: str(header_length)}, 404),
        ("GET", "/v2/models/price-direction/infer", None, {}, 405),
        ("DELETE", "/v2/models/price-direction", None, {}, 405),
        ("POST", "/v2/health/live", b"", {}, 405),
        ("POST", "/v2/models/price-direction/infer", body, {}, 400),  # binary data without its header
        ("POST", "/v2/models/price-direction/infer", body, {HEADER: str(len(body) + 1)}, 400),
        ("POST", "/v2/models/price-direction/infer", body + b"\0", {HEADER: str(header_length)}, 400),
        ("POST", "/v2/models/price-direction/infer", b"{broken", {}, 400),
    ]
    for method, path, data, extra, expected in cases:
        status, response_headers, answer = request(web.port, method, path, data, {**headers, **extra})
        assert status == expected, (method, path, answer)
        assert response_headers["content-type"] == "application/json", (method, path)
        assert set(json.loads(answer)) == {"error"}, (method, path, answer)
    # What tritonclient's default encoding got before the extension: now the answer says what is missing.
    answer = request(web.port, "POST", "/v2/models/price-direction/infer", body, headers)[2]
    assert HEADER in json.loads(answer)["error"]
    status, _, answer = request(
        web.port, "POST", "/v2/models/price-direction/infer", body, {HEADER: str(header_length)}
    )
    assert status == 401 and set(json.loads(answer)) == {"error"}


def fast_path_call(app, path: str, body: bytes, token: str, header_length=None):
    headers = [(b"host", b"testserver"), (b"authorization", f"Bearer {token}".encode())]
    if header_length is not None:
        headers.append((HEADER.lower().encode(), str(header_length).encode()))

    async def run():
        return await HttpCommunicator(app, "POST", path, body=body, headers=headers).get_response(timeout=30)

    response = async_to_sync(run)()
    return response["status"], dict(response["headers"]), response["body"]


def drf_call(path: str, body: bytes, token: str, header_length=None):
    extra = {"HTTP_INFERENCE_HEADER_CONTENT_LENGTH": str(header_length)} if header_length is not None else {}
    response = Client().post(
        path, data=body, content_type="application/octet-stream", HTTP_AUTHORIZATION=f"Bearer {token}", **extra
    )
    return response.status_code, {k.lower().encode(): v.encode() for k, v in response.headers.items()}, response.content


def without_ids(status: int, headers: dict, body: bytes):
    """The answer with what differs on every request (the request id) blanked out; binary tails kept."""
    length = headers.get(HEADER.lower().encode())
    head, tail = (body[: int(length)], body[int(length) :]) if length is not None else (body, b"")
    data = json.loads(head)
    if "parameters" in data:
        data.pop("id", None)
        data["parameters"].pop("request_id", None)
    return status, headers[b"content-type"], length, data, tail


def test_the_fast_path_and_the_drf_view_answer_binary_requests_alike(make_version, staff_user, token):
    champion = make_version(seed=0)
    deployment_create(name="price-direction", model_version=champion, user=staff_user)
    app = PredictionFastPath(get_asgi_application())
    columns = columns_of(classification_frame(n=4, seed=3)[list(FEATURES)].to_dict(orient="records"), FEATURES)

    def body(binary=True, outputs=None, columns=columns, **kwargs):
        return triton.InferenceServerClient.generate_request_body(
            tensors(columns, binary=binary), outputs=outputs, **kwargs
        )

    infer, pinned = "/v2/models/price-direction/infer", f"/v2/models/price-direction/versions/{champion.version}/infer"
    binary, length = body()
    bytes_input, bytes_length = body(columns={**columns, "f1": ["x"] * 4})
    cases = [
        (infer, binary, length),  # binary in, binary out (tritonclient's defaults)
        (pinned, binary, length),
        (infer, *body(outputs=json_outputs("predictions", "rows"))),  # binary in, JSON out
        (infer, *body(outputs=[triton.InferRequestedOutput("probabilities"), *json_outputs("rows")])),  # mixed
        (infer, *body(binary=False)),  # JSON in (tritonclient still asks for binary out)
        (infer, binary, None),
        (infer, binary, len(binary) + 5),
        (infer, binary[:-3], length),
        (infer, binary + b"\x01\x02", length),
        (infer, bytes_input, bytes_length),  # a numeric column sent as BYTES
        (infer, *body(outputs=[triton.InferRequestedOutput("predictions", class_count=2)])),
        ("/v2/models/price-direction/versions/7/infer", binary, length),
        ("/v2/models/nope/versions/1/infer", binary, length),
    ]
    answers = []
    for path, raw, header_length in cases:
        fast = without_ids(*fast_path_call(app, path, raw, token, header_length))
        drf = without_ids(*drf_call(path, raw, token, header_length))
        assert fast == drf, (path, header_length, fast, drf)
        answers.append(fast)
    statuses = [a[0] for a in answers]
    assert statuses == [200] * 5 + [400] * 6 + [404] * 2
    assert answers[0][1] == b"application/octet-stream" and answers[2][1] == b"application/json"
    result = triton.InferenceServerClient.parse_response_body(
        json.dumps(answers[0][3]).encode() + answers[0][4], header_length=len(json.dumps(answers[0][3]))
    )
    assert result.as_numpy("predictions").shape == (4,)
    assert "classification" in answers[10][3]["error"]
    assert "serves version 1" in answers[11][3]["error"]
