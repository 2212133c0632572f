"""The Open Inference Protocol V2 over gRPC with the standard client: tritonclient.grpc against a real
`python -m mlops_portal.grpc_serve` process, giving the REST path's predictions (sticky keys agreeing
across transports, versioned requests, a model with history), logging what it served and following
routing changes as a web process does; tokens as
REST takes them, probes without one, bad input named. And the REST and gRPC paths spending one
client's rate together; a message over the limit refused."""

import json
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc
from tritonclient.utils import InferenceServerException

from apps.core.services import api_token_create
from apps.deployments.notify import ack_key
from apps.deployments.services.model_deployment_service import deployment_create, deployment_set_traffic
from apps.deployments.serving.grpc_service import build_server
from apps.monitoring.models import PredictionLog
from apps.core.redis_client import get_redis

from .conftest import classification_frame, free_port, history_frame, wait_until

# The gRPC process reads committed data only.
pytestmark = pytest.mark.django_db(transaction=True)

FEATURES = ["f1", "f2", "f3"]


class GrpcProcess:
    """The Procfile's `grpc` process on the test database and Redis."""

    def __init__(self, port: int):
        self.port = port
        self.proc = None

    def launch(self):
        from tests.conftest import ARTIFACTS, ROOT, worker_env

        self.log_path = ARTIFACTS / f"grpc-{self.port}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlops_portal.grpc_serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT,
            env=worker_env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def wait_ready(self, timeout: float = 60.0):
        client = triton.InferenceServerClient(url=f"127.0.0.1:{self.port}")
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the gRPC process exited early, see {self.log_path}")
                try:
                    if client.is_server_live(client_timeout=1):
                        return self
                except InferenceServerException:
                    time.sleep(0.2)
        finally:
            client.close()
        raise RuntimeError(f"the gRPC process did not answer within {timeout}s, see {self.log_path}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


@pytest.fixture(scope="module")
def grpc_process(django_db_setup):
    """One process for the module: each test serves deployments of its own names, so no table of an
    earlier test's deployment is ever asked for. Launched here, waited for by `grpc_port`, so it
    starts up while a test's fixtures train their models."""
    process = GrpcProcess(free_port()).launch()
    yield process
    process.stop()


@pytest.fixture
def grpc_port(grpc_process):
    return grpc_process.wait_ready().port


@pytest.fixture
def client(grpc_port):
    client = triton.InferenceServerClient(url=f"127.0.0.1:{grpc_port}")
    yield client
    client.close()


@pytest.fixture
def token(analyst_user):
    return api_token_create(user=analyst_user, name="grpc")[1]


def bearer(token: str) -> dict:
    return {"authorization": f"Bearer {token}"}


def tensors(columns: dict) -> list:
    """tritonclient's default encoding: every input in raw_input_contents, BYTES length-prefixed."""
    inputs = []
    for name, values in columns.items():
        array = np.array(values, dtype=object if isinstance(values[0], str) else np.float64)
        tensor = triton.InferInput(name, list(array.shape), "BYTES" if array.dtype == object else "FP64")
        inputs.append(tensor.set_data_from_numpy(array))
    return inputs


def columns_of(records: list, names) -> dict:
    return {name: [r[name] for r in records] for name in names}


def texts(array) -> list[str]:
    return [v.decode() for v in array.tolist()]


def rest_predict(api, name: str, records: list, routing_key: str | None = None, **extra) -> dict:
    headers = {"HTTP_X_ROUTING_KEY": routing_key} if routing_key else {}
    response = api.post(
        f"/api/v1/deployments/{name}/predict", {"dataframe_records": records, **extra}, format="json", **headers
    )
    assert response.status_code == 200, response.content
    return response.json()


def status_of(call) -> tuple[str, str]:
    with pytest.raises(InferenceServerException) as refused:
        call()
    return refused.value.status(), refused.value.message()


@pytest.fixture
def served(grpc_process, make_version, staff_user):
    """ "grpc-plain" splitting 50/50 between two classifiers, "grpc-history" a model with history."""
    champion = make_version(seed=0, model_name="grpc-plain")
    challenger = make_version(seed=1, model_name="grpc-plain")
    deployment = deployment_create(name="grpc-plain", model_version=champion, user=staff_user)
    deployment_set_traffic(
        deployment=deployment,
        user=staff_user,
        allocations=[{"model_version": champion, "weight": 50}, {"model_version": challenger, "weight": 50}],
    )
    history = make_version("history", model_name="grpc-history")
    deployment_create(name="grpc-history", model_version=history, user=staff_user)
    return deployment, champion, challenger, history


def test_tritonclient_grpc_reads_metadata_and_infers_with_the_predictions_of_the_rest_path(
    served, client, grpc_process, grpc_port, token, analyst_api, staff_user
):
    deployment, champion, challenger, history = served

    server = client.get_server_metadata(headers=bearer(token))
    assert server.name == "mlops-portal" and "binary_tensor_data" in server.extensions
    metadata = client.get_model_metadata("grpc-plain", headers=bearer(token))
    assert sorted(metadata.versions) == sorted([str(champion.version), str(challenger.version)])
    assert [(i.name, i.datatype) for i in metadata.inputs] == [(f, "FP64") for f in FEATURES]
    assert {o.name: (o.datatype, list(o.shape)) for o in metadata.outputs}["probabilities"] == ("FP32", [-1, 2])
    assert client.is_model_ready("grpc-plain", headers=bearer(token))

    records = classification_frame(n=5, seed=7)[FEATURES].to_dict(orient="records")
    outputs = [triton.InferRequestedOutput(name) for name in ("predictions", "rows", "probabilities")]
    # Sticky keys: a key reaches the same version over REST and gRPC, with the same answer.
    seen = set()
    for key in (f"customer-{i}" for i in range(30)):
        expected = rest_predict(analyst_api, "grpc-plain", records, key, params={"probabilities": True})
        result = client.infer(
            "grpc-plain",
            tensors(columns_of(records, FEATURES)),
            outputs=outputs,
            headers=bearer(token),
            parameters={"routing_key": key},
        )
        assert result.get_response().model_version == expected["model_version"], key
        assert result.as_numpy("predictions").tolist() == expected["predictions"]
        assert texts(result.as_numpy("rows")) == expected["rows"]
        probabilities = result.as_numpy("probabilities")
        assert probabilities.dtype == np.float32 and probabilities.shape == (5, 2)
        np.testing.assert_allclose(probabilities, np.array(expected["probabilities"], dtype=np.float32), rtol=1e-6)
        seen.add(expected["model_version"])
        if len(seen) == 2:
            break
    assert seen == {str(champion.version), str(challenger.version)}

    # Concurrent calls go through the micro-batcher together; each still gets its own answer.
    asked = {
        f"customer-{i}": classification_frame(n=1 + i, seed=20 + i)[FEATURES].to_dict(orient="records")
        for i in range(6)
    }
    expected = {key: rest_predict(analyst_api, "grpc-plain", rows, key) for key, rows in asked.items()}

    def infer(key):
        own = triton.InferenceServerClient(url=f"127.0.0.1:{grpc_port}")
        try:
            result = own.infer(
                "grpc-plain",
                tensors(columns_of(asked[key], FEATURES)),
                headers=bearer(token),
                parameters={"routing_key": key},
            )
            return result.get_response().model_version, result.as_numpy("predictions").tolist()
        finally:
            own.close()

    with ThreadPoolExecutor(len(asked)) as pool:
        answers = dict(zip(asked, pool.map(infer, asked)))
    assert answers == {key: (e["model_version"], e["predictions"]) for key, e in expected.items()}

    # A version named in the request is served outside the split, and logged against it by the process.
    for version in (challenger, champion):
        result = client.infer(
            "grpc-plain",
            tensors(columns_of(records, FEATURES)),
            model_version=str(version.version),
            headers=bearer(token),
        )
        response = result.get_response()
        assert response.model_version == str(version.version)
        request_id = response.parameters["request_id"].string_param
        log = wait_until(lambda request_id=request_id: PredictionLog.objects.filter(request_id=request_id).first())
        assert log is not None and log.model_version_id == version.pk and log.status == "ok"

    # A model with history: its last rows per ticker, text columns as BYTES.
    needed = history.signature["history_rows"]
    latest = history_frame(seed=0).groupby("ticker").tail(needed)[["date", "ticker", "x"]].to_dict(orient="records")
    expected = rest_predict(analyst_api, "grpc-history", latest)
    columns = columns_of(latest, ("date", "ticker", "x"))
    result = client.infer("grpc-history", tensors(columns), headers=bearer(token))
    assert result.as_numpy("predictions").tolist() == expected["predictions"]
    assert texts(result.as_numpy("rows")) == expected["rows"] == ["AAA", "BBB"]

    # The same request with its values in the typed `contents` instead, and a `Token` header as REST takes it.
    request = pb.ModelInferRequest(model_name="grpc-history")
    for name in ("date", "ticker"):
        request.inputs.add(name=name, datatype="BYTES", shape=[len(latest)]).contents.bytes_contents.extend(
            value.encode() for value in columns[name]
        )
    request.inputs.add(name="x", datatype="FP64", shape=[len(latest)]).contents.fp64_contents.extend(columns["x"])
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        response = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
            request, metadata=[("authorization", f"Token {token}")], timeout=30
        )
    assert [o.name for o in response.outputs] == ["predictions", "rows"]
    assert np.frombuffer(response.raw_output_contents[0], dtype="<i8").tolist() == expected["predictions"]

    # A routing change reaches the process as it reaches a web process: it switches, then acknowledges.
    deployment_set_traffic(
        deployment=deployment,
        user=staff_user,
        allocations=[{"model_version": champion, "weight": 0}, {"model_version": challenger, "weight": 100}],
    )
    deployment.refresh_from_db()
    assert wait_until(
        lambda: (
            client.infer(
                "grpc-plain",
                tensors(columns_of(records, FEATURES)),
                headers=bearer(token),
                parameters={"routing_key": "customer-0"},
            )
            .get_response()
            .model_version
            == str(challenger.version)
        )
    )
    process = f"{socket.gethostname()}:{grpc_process.proc.pid}"

    def acknowledged():
        record = get_redis().hget(ack_key("grpc-plain"), process)
        return record is not None and json.loads(record)["generation"] >= deployment.generation

    assert wait_until(acknowledged)


def test_grpc_needs_a_portal_token_except_for_probes_and_names_what_is_wrong(
    client, grpc_port, token, outsider_user, make_version, staff_user
):
    version = make_version(seed=0, model_name="grpc-checks")
    deployment_create(name="grpc-checks", model_version=version, user=staff_user)
    good = columns_of(classification_frame(n=3, seed=2)[FEATURES].to_dict(orient="records"), FEATURES)

    # Probes for a load balancer need no token; everything about models does.
    assert client.is_server_live() and client.is_server_ready()
    for call in (
        client.get_server_metadata,
        lambda: client.get_model_metadata("grpc-checks"),
        lambda: client.is_model_ready("grpc-checks"),
        lambda: client.infer("grpc-checks", tensors(good)),
    ):
        assert status_of(call)[0] == "StatusCode.UNAUTHENTICATED"
    assert (
        status_of(lambda: client.infer("grpc-checks", tensors(good), headers=bearer("not-a-token")))[0]
        == "StatusCode.UNAUTHENTICATED"
    )
    outsider = api_token_create(user=outsider_user, name="grpc")[1]
    code, message = status_of(lambda: client.infer("grpc-checks", tensors(good), headers=bearer(outsider)))
    assert code == "StatusCode.PERMISSION_DENIED" and "may not ask for predictions" in message

    # Bad input: INVALID_ARGUMENT naming the input.
    wrong_type = {**good, "f2": [str(v) for v in good["f2"]]}
    code, message = status_of(lambda: client.infer("grpc-checks", tensors(wrong_type), headers=bearer(token)))
    assert code == "StatusCode.INVALID_ARGUMENT" and "f2" in message and "FP64" in message
    missing = {k: v for k, v in good.items() if k != "f3"}
    code, message = status_of(lambda: client.infer("grpc-checks", tensors(missing), headers=bearer(token)))
    assert code == "StatusCode.INVALID_ARGUMENT" and "f3" in message
    short = pb.ModelInferRequest(model_name="grpc-checks")
    for name in FEATURES:
        short.inputs.add(name=name, datatype="FP64", shape=[3])
        short.raw_input_contents.append(np.asarray(good[name][: 2 if name == "f1" else 3], dtype="<f8").tobytes())
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel, pytest.raises(grpc.RpcError) as refused:
        service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(short, metadata=bearer(token).items(), timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "raw_input_contents[0] (f1)" in refused.value.details() and "24 bytes, got 16" in refused.value.details()

    # Unknown models and versions: NOT_FOUND, saying what is served.
    assert (
        status_of(lambda: client.infer("no-such-model", tensors(good), headers=bearer(token)))[0]
        == "StatusCode.NOT_FOUND"
    )
    assert (
        status_of(lambda: client.get_model_metadata("no-such-model", headers=bearer(token)))[0]
        == "StatusCode.NOT_FOUND"
    )
    code, message = status_of(
        lambda: client.infer("grpc-checks", tensors(good), model_version="99", headers=bearer(token))
    )
    assert code == "StatusCode.NOT_FOUND" and f"serves version {version.version}" in message
    assert client.is_model_ready("grpc-checks", headers=bearer(token))


def test_rest_and_grpc_spend_one_rate_per_client_and_a_message_over_the_limit_is_refused(
    settings, token, analyst_api, make_version, staff_user
):
    # An in-process server: the rate is a setting of this process (DRF reads it at request time).
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"user": "100000/minute", "predict": "2/minute"},
    }
    version = make_version(seed=0, model_name="grpc-throttled")
    deployment_create(name="grpc-throttled", model_version=version, user=staff_user)
    records = classification_frame(n=2, seed=3)[FEATURES].to_dict(orient="records")
    server, service = build_server(threads=2, max_message_bytes=64 * 1024)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    client = triton.InferenceServerClient(url=f"127.0.0.1:{port}")
    try:
        rest_predict(analyst_api, "grpc-throttled", records)
        client.infer("grpc-throttled", tensors(columns_of(records, FEATURES)), headers=bearer(token))
        code, message = status_of(
            lambda: client.infer("grpc-throttled", tensors(columns_of(records, FEATURES)), headers=bearer(token))
        )
        assert code == "StatusCode.RESOURCE_EXHAUSTED" and "throttled" in message

        large = triton.InferInput("f1", [10_000], "FP64").set_data_from_numpy(np.zeros(10_000))
        code, message = status_of(lambda: client.infer("grpc-throttled", [large], headers=bearer(token)))
        assert code == "StatusCode.RESOURCE_EXHAUSTED" and "larger than max" in message
    finally:
        client.close()
        server.stop(None)
        service.close()
