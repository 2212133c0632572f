"""The prediction path: route, check the input, predict, log (into the process's log buffer).

`Predictor.predict` serves one request start to end (the DRF views, the demo). The ASGI fast path
(apps.deployments.serving.fastpath) uses the same steps split in two on its inference thread —
`prepare` for each request of a batch, then `run_batch` — so concurrent requests for the same model
version share one preprocessor and model call (micro-batching).

Shadow versions get a copy of the request on a small per-process thread pool, after the answer is
ready; their answers are logged under the same request id and never returned.

A classifier is always asked for its class probabilities, whether the client wants them or not:
its labels are their argmax (exactly what `predict` computes), so this costs no second model call,
and the prediction log keeps them for log loss and calibration once ground truth arrives.
"""
from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from django.conf import settings

from apps.datasets.choices import DatasetTask
from apps.monitoring.choices import PredictionStatus
from apps.monitoring.services.logbuffer import log_entry, prediction_log_push

from ..router import routing_key_hash
from .inputs import InputError, check_columns, parse_mlflow, parse_v2
from .protocol import probabilities_field, probabilities_requested
from .v2 import pinned_version_id
from .state import ModelUnavailable, ServedVersion, ServingTable, serving_state

logger = logging.getLogger(__name__)

DRIFT_SAMPLE_ROWS = 5
FP32_DIGITS = 7


class PredictionInputError(InputError):
    """Bad input, attributed to the version that was chosen (the API answers 400)."""

    def __init__(self, field: str, message: str, *, version: str | None = None, needed_rows: int | None = None):
        super().__init__(field, message)
        self.version = version
        self.needed_rows = needed_rows


class PredictionFailed(RuntimeError):
    """The model raised on valid input (the API answers 500 and the error counts against the version)."""


class NonFinitePrediction(ArithmeticError):
    """The model answered NaN or ±Infinity: no number a client (or JSON) can use, so the version failed."""


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
    # Classifiers: one row per prediction, in the order of `classes` (the signature's labels, else
    # class indices). None for regression.
    probabilities: list | None = None
    classes: list | None = None


@dataclass
class Prepared:
    """A routed, checked request waiting for its model call."""

    table: ServingTable
    served: ServedVersion
    request_id: str
    columns: dict
    frame: pd.DataFrame
    inputs_hash: str
    key_hash: str
    started: float
    served_at: float | None = None
    # Asked of one version by name (V2 `/versions/<v>/`): outside the traffic split, so no shadow copies.
    pinned: bool = False
    # (predictions, labels, probabilities or None) or an exception
    outcome: tuple | None = field(default=None, repr=False)

    @property
    def n_rows(self) -> int:
        return len(self.frame)


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


def is_classifier(served: ServedVersion) -> bool:
    return served.task == DatasetTask.CLASSIFICATION


def class_labels(served: ServedVersion, n_classes: int) -> list:
    """What each probability column is: the signature's class labels, else the class indices."""
    classes = getattr(served.loaded, "classes", None)
    return list(classes) if classes else list(range(n_classes))


def _fp32_rows(values: np.ndarray) -> list:
    """Rows of probabilities as JSON numbers with float32's precision (7 significant digits): what
    the V2 FP32 tensor promises, and short in the logs (0.7155, not 0.7155000261878967). Vectorised,
    since it runs on every classifier request."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore"):
        exponent = np.floor(np.log10(np.abs(values)))
    exponent[~np.isfinite(exponent)] = 0
    # Denormal values would need a scale past float64's range.
    exponent = np.maximum(exponent, -290)
    scale = 10.0 ** (FP32_DIGITS - 1 - exponent)
    return (np.round(values * scale) / scale).tolist()


def _classify(served: ServedVersion, frame) -> tuple[list, list, list]:
    """(labels, row labels, probabilities) from one predict_proba call; labels are its argmax, as
    TrainedModel.predict computes them."""
    probabilities, labels = served.loaded.predict_proba_raw(frame)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape[0] == 0:
        return [], [], []
    if not np.isfinite(probabilities).all():
        row, column = (int(i) for i in np.argwhere(~np.isfinite(probabilities))[0])
        raise NonFinitePrediction(f"row {row}: the model answered {probabilities[row, column]} as a class probability")
    predictions = served.loaded.labels_of(probabilities.argmax(axis=1))
    return predictions, labels, _fp32_rows(probabilities)


def _run_model(served: ServedVersion, frame) -> tuple[list, list, list | None]:
    """(predictions, row labels, class probabilities or None for regression)."""
    from apps.datasets.preprocessing import InsufficientHistory, InvalidInput

    probabilities = None
    try:
        if is_classifier(served):
            predictions, labels, probabilities = _classify(served, frame)
        else:
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
    predictions = _json_safe(predictions)
    bad = next((i for i, v in enumerate(predictions) if isinstance(v, float) and not math.isfinite(v)), None)
    if bad is not None:
        raise NonFinitePrediction(f"row {bad}: the model answered {predictions[bad]}")
    return predictions, _json_safe(labels), probabilities


def batchable(served: ServedVersion) -> bool:
    """Rows of different requests may share one model call only when each prediction depends on its
    own row alone: no history (lags, windows) and no recurrent window in the model."""
    return served.spec.history_rows <= 1 and int(getattr(served.loaded, "window", 1) or 1) <= 1


class Predictor:
    def __init__(self, state=serving_state):
        self.state = state
        self._shadow_pool: ThreadPoolExecutor | None = None
        self._shadow_pending = 0
        self._shadow_lock = threading.Lock()

    def table(self, deployment: str) -> ServingTable:
        return self.state.table(deployment)

    def prepare(self, *, table: ServingTable, body: dict, protocol: str, raw_body: bytes, routing_key: str | None,
                started: float, served_at: float | None = None, version: str | None = None) -> Prepared:
        """Routes the request and checks its input against the chosen version (InputError is logged
        against that version and re-raised as PredictionInputError). Call inside `state.routing()`,
        until the answer is logged: routing takes the deployment's newest table, however old
        `table` is, and a replaced table is acknowledged only once its requests have left."""
        table = self.state.current(table)
        # `version` (a V2 versioned route) bypasses the traffic split; VersionNotServed if not served.
        version_id = table.router.pick(routing_key) if version is None else pinned_version_id(table, version)
        request_id = str(uuid.uuid4())
        inputs_hash = hashlib.blake2b(raw_body, digest_size=16).hexdigest()
        key_hash = routing_key_hash(routing_key) if routing_key is not None else ""
        broken = table.unavailable.get(version_id)
        if broken is not None:
            # Logged as the version's server error, so its error rate (and the rollout gates) see it.
            self._push([self._entry(table, broken, request_id, started, PredictionStatus.SERVER_ERROR, inputs_hash,
                                    key_hash, error=broken.reason, served_at=served_at)])
            raise ModelUnavailable(broken.reason)
        served = table.versions[version_id]
        try:
            if not is_classifier(served) and probabilities_requested(protocol, body):
                raise InputError(probabilities_field(protocol),
                                 f"class probabilities are for classification models; version {served.label} "
                                 f"is a {served.task} model")
            columns = parse_v2(body, served.spec) if protocol == "v2" else parse_mlflow(body, served.spec)[0]
            frame = check_columns(columns, served.spec, known=table.known_columns, max_rows=max_batch_rows())
        except InputError as exc:
            self._push([self._entry(table, served, request_id, started, PredictionStatus.CLIENT_ERROR, inputs_hash,
                                    key_hash, error=str(exc), served_at=served_at)])
            raise PredictionInputError(exc.field, exc.message, version=served.label) from None
        return Prepared(table=table, served=served, request_id=request_id, columns=columns, frame=frame,
                        inputs_hash=inputs_hash, key_hash=key_hash, started=started, served_at=served_at,
                        pinned=version is not None)

    def predict(self, *, deployment: str, body: dict, protocol: str, raw_body: bytes, routing_key: str | None = None,
                started: float | None = None, served_at: float | None = None, version: str | None = None) -> Prediction:
        """Serves one request. `protocol` is "mlflow" or "v2"; `started` a perf_counter() taken when the
        request arrived (the logged latency covers everything from there to the answer); `served_at`
        (epoch seconds) only when replaying recorded traffic, e.g. the demo's history."""
        started = time.perf_counter() if started is None else started
        table = self.table(deployment)
        with self.state.routing():
            prepared = self.prepare(table=table, body=body, protocol=protocol, raw_body=raw_body,
                                    routing_key=routing_key, started=started, served_at=served_at, version=version)
            self.run_batch([prepared])
        return self.result(prepared)

    def run_batch(self, batch: list[Prepared]) -> None:
        """Predicts every prepared request (all of one model version when more than one), logs each
        answer in one Redis pipeline, and leaves each request's outcome on it. Rows of several requests
        go through one model call; if that call fails, each request is retried alone so an error is
        charged to the request that caused it."""
        if len(batch) == 1 or not batchable(batch[0].served):
            for item in batch:
                item.outcome = self._call(item.served, item.frame)
        else:
            combined = pd.concat([item.frame for item in batch], ignore_index=True)
            outcome = self._call(batch[0].served, combined)
            if isinstance(outcome, Exception):
                for item in batch:
                    item.outcome = self._call(item.served, item.frame)
            else:
                self._split(batch, *outcome)
        entries = []
        for item in batch:
            if isinstance(item.outcome, PredictionInputError):
                entries.append(self._entry(item.table, item.served, item.request_id, item.started,
                                           PredictionStatus.CLIENT_ERROR, item.inputs_hash, item.key_hash,
                                           error=str(item.outcome), served_at=item.served_at))
            elif isinstance(item.outcome, Exception):
                entries.append(self._entry(item.table, item.served, item.request_id, item.started,
                                           PredictionStatus.SERVER_ERROR, item.inputs_hash, item.key_hash,
                                           error=f"{type(item.outcome).__name__}: {item.outcome}", served_at=item.served_at))
            else:
                entries.append(self._entry(item.table, item.served, item.request_id, item.started, PredictionStatus.OK,
                                           item.inputs_hash, item.key_hash, output=item.outcome[0], n_rows=item.n_rows,
                                           features=_drift_sample(item.columns, item.served), served_at=item.served_at,
                                           probabilities=item.outcome[2]))
        self._push(entries)
        for item in batch:
            if not isinstance(item.outcome, Exception) and item.table.router.shadow_ids and not item.pinned:
                self._shadow(item.table, item.columns, item.request_id, item.inputs_hash, item.key_hash)

    def result(self, item: Prepared) -> Prediction:
        """The answer for a request after run_batch, or its error raised."""
        if isinstance(item.outcome, PredictionInputError):
            raise item.outcome
        if isinstance(item.outcome, Exception):
            raise PredictionFailed(f"model version {item.served.label} failed: {type(item.outcome).__name__}") from item.outcome
        predictions, labels, probabilities = item.outcome
        classes = None
        if probabilities is not None:
            width = len(probabilities[0]) if probabilities else len(getattr(item.served.loaded, "classes", None) or ())
            classes = class_labels(item.served, width)
        return Prediction(
            request_id=item.request_id, deployment=item.table.name, model_name=item.served.model_name,
            model_version=item.served.label, version_id=item.served.version_id, task=item.served.task,
            predictions=predictions, row_labels=labels, latency_ms=(time.perf_counter() - item.started) * 1000,
            probabilities=probabilities, classes=classes,
        )

    def _call(self, served: ServedVersion, frame):
        try:
            return _run_model(served, frame)
        except PredictionInputError as exc:
            return exc
        except Exception as exc:
            logger.exception("%s v%s failed on %d rows", served.model_name, served.version, len(frame))
            return exc

    @staticmethod
    def _split(batch: list[Prepared], predictions: list, labels: list, probabilities: list | None) -> None:
        spec = batch[0].served.spec
        offset = 0
        for item in batch:
            n = item.n_rows
            own_labels = labels[offset:offset + n]
            if not spec.entity_column and not spec.time_column:
                # Without entity or time a row is labelled by its position in its own request.
                own_labels = [str(i) for i in range(n)]
            own_probabilities = probabilities[offset:offset + n] if probabilities is not None else None
            item.outcome = (predictions[offset:offset + n], own_labels, own_probabilities)
            offset += n

    @staticmethod
    def _entry(table, served, request_id, started, status, inputs_hash, key_hash, *, output=None, n_rows=0,
               features=None, error="", shadow=False, served_at=None, probabilities=None) -> tuple[dict, tuple[str, str]]:
        entry = log_entry(
            request_id=request_id, deployment_id=table.deployment_id, version_id=served.version_id, shadow=shadow,
            status=status, latency_ms=(time.perf_counter() - started) * 1000, n_rows=n_rows, inputs_hash=inputs_hash,
            output=output or [], error=error, routing_key_hash=key_hash, features=features, served_at=served_at,
            probabilities=probabilities,
        )
        return entry, (table.name, served.label)

    @staticmethod
    def _push(entries: list[tuple[dict, tuple[str, str]]]) -> None:
        if entries:
            prediction_log_push(entries=[e for e, _ in entries], labels=[label for _, label in entries])

    def _shadow(self, table: ServingTable, columns: dict, request_id: str, inputs_hash: str, key_hash: str) -> None:
        limit = int(getattr(settings, "DEPLOYMENTS_SHADOW_QUEUE", 200))
        with self._shadow_lock:
            if self._shadow_pool is None:
                self._shadow_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shadow")
            if self._shadow_pending >= limit:
                # Shadow copies are best effort: under overload the served traffic comes first.
                logger.warning("shadow queue full (%d); skipping the copy of %s", limit, request_id)
                return
            # A shadow that cannot be loaded on this host (table.unavailable says why) gets no copy.
            shadows = [table.versions[vid] for vid in table.router.shadow_ids if vid in table.versions]
            self._shadow_pending += len(shadows)
        for served in shadows:
            self._shadow_pool.submit(self._shadow_one, table, served, columns, request_id, inputs_hash, key_hash)

    def _shadow_one(self, table, served, columns, request_id, inputs_hash, key_hash) -> None:
        started = time.perf_counter()
        try:
            frame = check_columns(columns, served.spec, known=table.known_columns, max_rows=max_batch_rows())
            predictions, _, probabilities = _run_model(served, frame)
        except InputError as exc:
            entry = self._entry(table, served, request_id, started, PredictionStatus.CLIENT_ERROR, inputs_hash, key_hash,
                                error=str(exc), shadow=True)
        except Exception as exc:
            logger.exception("shadow %s v%s failed", served.model_name, served.version)
            entry = self._entry(table, served, request_id, started, PredictionStatus.SERVER_ERROR, inputs_hash, key_hash,
                                error=f"{type(exc).__name__}: {exc}", shadow=True)
        else:
            entry = self._entry(table, served, request_id, started, PredictionStatus.OK, inputs_hash, key_hash,
                                output=predictions, n_rows=len(frame), features=_drift_sample(columns, served),
                                shadow=True, probabilities=probabilities)
        try:
            self._push([entry])
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
