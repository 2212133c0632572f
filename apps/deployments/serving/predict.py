"""The prediction path: route, check the input, predict, log — with one Redis round trip for the log.

Shadow versions get a copy of the request on a small per-process thread pool, after the answer is
ready; their answers are logged under the same request id and never returned.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from django.conf import settings

from apps.monitoring.choices import PredictionStatus
from apps.monitoring.services.logbuffer import log_entry, prediction_log_push

from ..router import routing_key_hash
from .inputs import InputError, check_columns, parse_mlflow, parse_v2
from .state import ServedVersion, ServingTable, serving_state

logger = logging.getLogger(__name__)

DRIFT_SAMPLE_ROWS = 5


class PredictionInputError(InputError):
    """Bad input, attributed to the version that was chosen (the API answers 400)."""

    def __init__(self, field: str, message: str, *, version: str | None = None, needed_rows: int | None = None):
        super().__init__(field, message)
        self.version = version
        self.needed_rows = needed_rows


class PredictionFailed(RuntimeError):
    """The model raised on valid input (the API answers 500 and the error counts against the version)."""


@dataclass
class Prediction:
    request_id: str
    deployment: str
    model_name: str
    model_version: str
    version_id: int
    task: str
    predictions: list
    row_labels: list
    latency_ms: float


def max_batch_rows() -> int:
    return int(getattr(settings, "DEPLOYMENTS_MAX_BATCH_ROWS", 1000))


def _json_safe(values) -> list:
    if isinstance(values, np.ndarray):
        return values.tolist()
    return [v.item() if isinstance(v, np.generic) else v for v in values]


def _drift_sample(columns: dict, served: ServedVersion) -> dict:
    """The last few rows' numeric inputs, straight from the request's columns (no pandas here:
    this runs on every request)."""
    return {c: [float(v) for v in columns[c][-DRIFT_SAMPLE_ROWS:]] for c in served.numeric_columns if c in columns}


def _run_model(served: ServedVersion, frame) -> tuple[list, list]:
    from apps.datasets.preprocessing import InsufficientHistory, InvalidInput

    try:
        predictions, labels = served.loaded.predict_raw(frame)
    except InsufficientHistory as exc:
        who = f" for {served.spec.entity_column} {exc.entity!r}" if exc.entity is not None and served.spec.entity_column else ""
        raise PredictionInputError(
            "rows",
            f"this model needs the last {exc.needed} rows of history{who} (in time order), got {exc.got}",
            version=served.label, needed_rows=exc.needed,
        ) from None
    except InvalidInput as exc:
        raise PredictionInputError(exc.field, exc.message, version=served.label) from None
    return _json_safe(predictions), _json_safe(labels)


class Predictor:
    def __init__(self, state=serving_state):
        self.state = state
        self._shadow_pool: ThreadPoolExecutor | None = None
        self._shadow_pending = 0
        self._shadow_lock = threading.Lock()

    def table(self, deployment: str) -> ServingTable:
        return self.state.table(deployment)

    def predict(self, *, deployment: str, body: dict, protocol: str, raw_body: bytes, routing_key: str | None = None,
                started: float | None = None, served_at: float | None = None) -> Prediction:
        """Serves one request. `protocol` is "mlflow" or "v2"; `started` a perf_counter() taken when the
        request arrived (the logged latency covers everything from there to the answer); `served_at`
        (epoch seconds) only when replaying recorded traffic, e.g. the demo's history."""
        started = time.perf_counter() if started is None else started
        table = self.table(deployment)
        version_id = table.router.pick(routing_key)
        served = table.versions[version_id]
        request_id = str(uuid.uuid4())
        inputs_hash = hashlib.blake2b(raw_body, digest_size=16).hexdigest()
        key_hash = routing_key_hash(routing_key) if routing_key is not None else ""
        columns = None
        try:
            columns = parse_v2(body, served.spec) if protocol == "v2" else parse_mlflow(body, served.spec)[0]
            frame = check_columns(columns, served.spec, known=table.known_columns, max_rows=max_batch_rows())
            predictions, labels = _run_model(served, frame)
        except InputError as exc:
            self._log(table, served, request_id, started, PredictionStatus.CLIENT_ERROR, inputs_hash, key_hash,
                      error=str(exc), served_at=served_at)
            if not isinstance(exc, PredictionInputError):
                exc = PredictionInputError(exc.field, exc.message, version=served.label)
            raise exc from None
        except Exception as exc:
            logger.exception("%s v%s failed on a request of %s", served.model_name, served.version, deployment)
            self._log(table, served, request_id, started, PredictionStatus.SERVER_ERROR, inputs_hash, key_hash,
                      error=f"{type(exc).__name__}: {exc}", served_at=served_at)
            raise PredictionFailed(f"model version {served.label} failed: {type(exc).__name__}") from exc
        latency_ms = self._log(table, served, request_id, started, PredictionStatus.OK, inputs_hash, key_hash,
                               output=predictions, n_rows=len(frame), features=_drift_sample(columns, served),
                               served_at=served_at)
        if table.router.shadow_ids:
            self._shadow(table, columns, request_id, inputs_hash, key_hash)
        return Prediction(
            request_id=request_id, deployment=deployment, model_name=served.model_name, model_version=served.label,
            version_id=served.version_id, task=served.task, predictions=predictions, row_labels=labels,
            latency_ms=latency_ms,
        )

    def _log(self, table, served, request_id, started, status, inputs_hash, key_hash, *, output=None, n_rows=0,
             features=None, error="", shadow=False, served_at=None) -> float:
        latency_ms = (time.perf_counter() - started) * 1000
        entry = log_entry(
            request_id=request_id, deployment_id=table.deployment_id, version_id=served.version_id, shadow=shadow,
            status=status, latency_ms=latency_ms, n_rows=n_rows, inputs_hash=inputs_hash, output=output or [],
            error=error, routing_key_hash=key_hash, features=features, served_at=served_at,
        )
        prediction_log_push(entries=[entry], labels=[(table.name, served.label)])
        return latency_ms

    def _shadow(self, table: ServingTable, columns: dict, request_id: str, inputs_hash: str, key_hash: str) -> None:
        limit = int(getattr(settings, "DEPLOYMENTS_SHADOW_QUEUE", 200))
        with self._shadow_lock:
            if self._shadow_pool is None:
                self._shadow_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shadow")
            if self._shadow_pending >= limit:
                # Shadow copies are best effort: under overload the served traffic comes first.
                logger.warning("shadow queue full (%d); skipping the copy of %s", limit, request_id)
                return
            self._shadow_pending += len(table.router.shadow_ids)
        for version_id in table.router.shadow_ids:
            self._shadow_pool.submit(self._shadow_one, table, table.versions[version_id], columns, request_id,
                                     inputs_hash, key_hash)

    def _shadow_one(self, table, served, columns, request_id, inputs_hash, key_hash) -> None:
        started = time.perf_counter()
        try:
            frame = check_columns(columns, served.spec, known=table.known_columns, max_rows=max_batch_rows())
            predictions, _ = _run_model(served, frame)
        except InputError as exc:
            self._log(table, served, request_id, started, PredictionStatus.CLIENT_ERROR, inputs_hash, key_hash,
                      error=str(exc), shadow=True)
        except Exception as exc:
            logger.exception("shadow %s v%s failed", served.model_name, served.version)
            self._log(table, served, request_id, started, PredictionStatus.SERVER_ERROR, inputs_hash, key_hash,
                      error=f"{type(exc).__name__}: {exc}", shadow=True)
        else:
            self._log(table, served, request_id, started, PredictionStatus.OK, inputs_hash, key_hash,
                      output=predictions, n_rows=len(frame), features=_drift_sample(columns, served), shadow=True)
        finally:
            with self._shadow_lock:
                self._shadow_pending -= 1

    def shadow_drain(self, timeout: float = 10.0) -> bool:
        """Waits until queued shadow copies are done (tests, graceful shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._shadow_lock:
                if self._shadow_pending <= 0:
                    return True
            time.sleep(0.01)
        return False


predictor = Predictor()
