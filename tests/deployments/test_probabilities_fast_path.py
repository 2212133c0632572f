"""Class probabilities through the ASGI fast path: the same answers and errors as the DRF views, and
micro-batched requests that ask for them and requests that do not still share one model call."""

import asyncio
import json

import numpy as np
import pytest
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator
from django.core.asgi import get_asgi_application

from apps.deployments.serving import predict as predict_module
from apps.deployments.serving.fastpath import PredictionFastPath
from apps.deployments.services.model_deployment_service import deployment_create
from apps.monitoring.models import PredictionLog
from apps.monitoring.services.logbuffer import prediction_logs_flush

from .conftest import classification_frame
from .test_fast_path import INFER, PREDICT, call, comparable, served, via_drf  # noqa: F401  (served is a fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def close(batched, single):
    """A batch of 18 rows and one of 3 may round the last float32 digit differently (BLAS picks its
    kernel by shape); the answers are the same model's to within that."""
    np.testing.assert_allclose(np.asarray(batched, dtype=float), np.asarray(single, dtype=float), rtol=1e-6, atol=1e-6)


COLUMNS = ("f1", "f2", "f3")


def v2_body(rows, **extra):
    return {
        "inputs": [
            {"name": c, "shape": [len(rows)], "datatype": "FP64", "data": [r[c] for r in rows]} for c in COLUMNS
        ],
        **extra,
    }


def test_the_fast_path_and_the_drf_views_answer_probabilities_and_their_refusals_alike(
    served, make_version, staff_user
):
    _, token = served
    deployment_create(name="returns", model_version=make_version("regression", model_name="returns"), user=staff_user)
    app = PredictionFastPath(get_asgi_application())
    rows = classification_frame(n=5, seed=8)[list(COLUMNS)].to_dict(orient="records")
    ask = {"params": {"probabilities": True}}
    cases = [
        (PREDICT, {"dataframe_records": rows, **ask}),
        (
            PREDICT,
            {"dataframe_split": {"columns": list(COLUMNS), "data": [[r[c] for c in COLUMNS] for r in rows]}, **ask},
        ),
        (PREDICT, {"instances": rows, **ask}),
        (PREDICT, {"inputs": {c: [r[c] for r in rows] for c in COLUMNS}, **ask}),
        (INFER, v2_body(rows, outputs=[{"name": "probabilities"}])),
        (INFER, v2_body(rows, outputs=[{"name": "predict"}, {"name": "probabilities"}, {"name": "rows"}])),
        (PREDICT, {"instances": rows, "params": {"probabilities": True, "top_k": 2}}),
        (PREDICT, {"instances": rows, "params": "probabilities"}),
        (INFER, v2_body(rows, outputs=[{"name": "logits"}])),
        ("/api/v1/deployments/returns/predict", {"instances": [{"f1": 1.0, "f2": 2.0}], **ask}),
        (
            "/v2/models/returns/infer",
            {
                "inputs": [
                    {"name": "f1", "shape": [1], "datatype": "FP64", "data": [1.0]},
                    {"name": "f2", "shape": [1], "datatype": "FP64", "data": [2.0]},
                ],
                "outputs": [{"name": "probabilities"}],
            },
        ),
    ]
    statuses = []
    for path, body in cases:
        fast_status, fast_body, _ = call(app, path, body, token)
        drf_status, drf_body = via_drf(path, body, token)
        assert fast_status == drf_status, (path, body, fast_body, drf_body)
        assert comparable(fast_body) == comparable(drf_body), (path, body)
        statuses.append(fast_status)
    assert statuses == [200] * 6 + [400] * 5
    first = call(app, *cases[0], token)[1]
    tensor = call(app, *cases[4], token)[1]["outputs"][0]
    assert np.asarray(tensor["data"]).reshape(tensor["shape"]).tolist() == first["probabilities"]


def test_requests_that_ask_for_probabilities_and_requests_that_do_not_share_one_model_call(served, monkeypatch):
    _, token = served
    app = PredictionFastPath(get_asgi_application())
    frame = classification_frame(n=18, seed=9)[list(COLUMNS)]
    chunks = [frame.iloc[i : i + 3].to_dict(orient="records") for i in range(0, 18, 3)]
    singles = [
        call(app, PREDICT, {"dataframe_records": rows, "params": {"probabilities": True}}, token)[1] for rows in chunks
    ]
    calls = []
    original = predict_module._run_model

    def counting(served_version, frame_):
        calls.append(len(frame_))
        return original(served_version, frame_)

    monkeypatch.setattr(predict_module, "_run_model", counting)
    bodies = []
    for i, rows in enumerate(chunks):
        if i % 3 == 0:
            bodies.append((PREDICT, {"dataframe_records": rows, "params": {"probabilities": True}}))
        elif i % 3 == 1:
            bodies.append((PREDICT, {"dataframe_records": rows}))
        else:
            bodies.append((INFER, v2_body(rows, outputs=[{"name": "predictions"}, {"name": "probabilities"}])))

    async def burst():
        headers = [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {token}".encode()),
        ]
        communicators = [
            HttpCommunicator(app, "POST", path, body=json.dumps(b).encode(), headers=headers) for path, b in bodies
        ]
        return await asyncio.gather(*(c.get_response(timeout=30) for c in communicators))

    answers = [json.loads(r["body"]) for r in async_to_sync(burst)()]
    assert calls == [18], "six requests, one preprocessor and model call"
    request_ids = []
    for i, (answer, single) in enumerate(zip(answers, singles)):
        if i % 3 == 2:
            labels, tensor = answer["outputs"]
            assert tensor["shape"] == [3, 2]
            close(np.asarray(tensor["data"]).reshape(3, 2), single["probabilities"])
            assert labels["data"] == single["predictions"]
            request_ids.append(answer["parameters"]["request_id"])
            continue
        assert answer["predictions"] == single["predictions"]
        if i % 3 == 0:
            close(answer["probabilities"], single["probabilities"])
        else:
            assert "probabilities" not in answer
        request_ids.append(answer["request_id"])
    prediction_logs_flush()
    logged = {
        str(log.request_id): log.probabilities for log in PredictionLog.objects.filter(request_id__in=request_ids)
    }
    for request_id, single in zip(request_ids, singles):
        close(logged[request_id], single["probabilities"])
