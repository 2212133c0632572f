"""The prediction path: route, check the input, predict, log (into the process's log buffer).

`Predictor.predict` serves one request start to end (the DRF views, the demo). The ASGI fast path
(apps.deployments.serving.fastpath) uses the same steps split in two on its inference thread —
`prepare` for each request of a batch, then `run_batch` — so concurrent requests for the same model
version share one preprocessor pass and one model call (micro-batching), for every model:

- without history, the rows of all requests are concatenated (a prediction depends on its row alone);
- with history (lags, windows: the demo's price-direction needs 104 rows per entity), each request's
  entities keep their own last `history_rows` rows and all those windows go through the steps together
  (FittedPreprocessor.serving_matrices), so two requests for the same ticker never mix;
- recurrent models (a window of feature rows) get their input per request, stacked for one call.

A request whose input fails a check fails alone; if the shared model call raises, each request is
retried alone so the error is charged to the request that caused it.

The lean path: the checked input (inputs.CheckedRows, float64 arrays) goes to the preprocessor and its
float32 feature matrix to the estimator; no pandas DataFrame is built for a request.

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
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from django.conf import settings

from apps.datasets.choices import DatasetTask
from apps.monitoring.choices import PredictionStatus
from apps.monitoring.services.logbuffer import log_entry, prediction_log_push

from ..router import routing_key_hash
from .errors import PredictionFailed, PredictionInputError
from .inputs import CheckedRows, InputError, check_columns, parse_mlflow, parse_v2
from .protocol import probabilities_field, probabilities_requested
from .v2 import pinned_version_id
from .state import ModelUnavailable, ServedVersion, ServingTable, serving_state

logger = logging.getLogger(__name__)

DRIFT_SAMPLE_ROWS = 5  # per request, drawn among its predicted rows (_drift_sample)
FP32_DIGITS = 7


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
    rows: CheckedRows
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
        return len(self.rows)

    @property
    def model_rows(self) -> int:
        """About how many rows the model predicts for this request (batch sizing): one per input row,
        with history at most one per `history_rows` input rows (one per entity)."""
        return max(1, self.n_rows // max(1, self.served.spec.history_rows))


@dataclass
class ModelInput:
    """The estimator's input for one or more requests: a float32 matrix (a stack of windows for
    recurrent models) and a label per prediction."""

    X: np.ndarray
    labels: list

    def __len__(self) -> int:
        return len(self.X)


def max_batch_rows() -> int:
    return int(getattr(settings, "DEPLOYMENTS_MAX_BATCH_ROWS", 1000))


def _json_safe(values) -> list:
    if isinstance(values, np.ndarray):
        return values.tolist()
    return [v.item() if isinstance(v, np.generic) else v for v in values]


def _drift_sample(rows: CheckedRows, served: ServedVersion) -> dict:
    """The numeric inputs of at most DRIFT_SAMPLE_ROWS of the rows this request's predictions are for,
    drawn uniformly among them: with history only each entity's newest row (the one its prediction
    is for; the rows before it are context, and the next request of that entity sends them again),
    else every row. So a served row is counted once, however many windows it appeared in. No pandas
    here: this runs on every request."""
    predicted = _predicted_rows(rows, served)
    if len(predicted) > DRIFT_SAMPLE_ROWS:
        predicted = sorted(_drift_random.sample(predicted, DRIFT_SAMPLE_ROWS))
    return {c: [float(rows[c][i]) for i in predicted] for c in served.numeric_columns if c in rows.data}


# Per process: drift sampling needs no reproducible draws and must not touch the global generator.
_drift_random = random.Random()


def _predicted_rows(rows: CheckedRows, served: ServedVersion) -> list[int]:
    """Indices of the input rows the predictions are for: each entity's newest row (latest time, the
    later row on a tie, the last row without a time column: the preprocessor's stable order) for
    models that read history, every row for the others."""
    spec = served.spec
    if spec.history_rows <= 1 and served.loaded.window <= 1:
        return list(range(len(rows)))
    entities = rows[spec.entity_column] if spec.entity_column in rows.data else None
    times = _time_keys(rows[spec.time_column]) if spec.time_column in rows.data else None
    newest: dict = {}
    for i in range(len(rows)):
        key = entities[i] if entities is not None else None
        j = newest.get(key)
        if j is None or times is None or times[i] >= times[j]:
            newest[key] = i
    return sorted(newest.values())


def _time_keys(values) -> list:
    """Comparable times: parsed ISO dates (naive ones read as UTC), or the strings themselves when
    one does not parse."""
    try:
        parsed = [datetime.fromisoformat(str(v)) for v in values]
    except ValueError:
        return [str(v) for v in values]
    return [t if t.tzinfo else t.replace(tzinfo=UTC) for t in parsed]


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


def _classify(served: ServedVersion, model_input: ModelInput) -> tuple[list, list, list]:
    """(labels, row labels, probabilities) from one predict_proba call; labels are its argmax, as
    TrainedModel.predict computes them."""
    if len(model_input) == 0:
        return [], [], []
    probabilities = np.asarray(served.loaded.trained.predict_proba(model_input.X, None), dtype=np.float64)
    if not np.isfinite(probabilities).all():
        row, column = (int(i) for i in np.argwhere(~np.isfinite(probabilities))[0])
        raise NonFinitePrediction(f"row {row}: the model answered {probabilities[row, column]} as a class probability")
    predictions = served.loaded.labels_of(probabilities.argmax(axis=1))
    return predictions, model_input.labels, _fp32_rows(probabilities)


def _run_model(served: ServedVersion, model_input: ModelInput) -> tuple[list, list, list | None]:
    """The one estimator call of a batch: (predictions, row labels, class probabilities or None for
    regression)."""
    probabilities = None
    if is_classifier(served):
        predictions, labels, probabilities = _classify(served, model_input)
    elif len(model_input) == 0:
        predictions, labels = [], []
    else:
        predictions = served.loaded.labels_of(np.asarray(served.loaded.trained.predict(model_input.X, None)))
        labels = model_input.labels
    predictions = _json_safe(predictions)
    bad = next((i for i, v in enumerate(predictions) if isinstance(v, float) and not math.isfinite(v)), None)
    if bad is not None:
        raise NonFinitePrediction(f"row {bad}: the model answered {predictions[bad]}")
    return predictions, _json_safe(labels), probabilities


def _input_error(served: ServedVersion, exc: Exception) -> PredictionInputError:
    from apps.datasets.preprocessing import InsufficientHistory

    if isinstance(exc, InsufficientHistory):
        who = (
            f" for {served.spec.entity_column} {exc.entity!r}"
            if exc.entity is not None and served.spec.entity_column
            else ""
        )
        return PredictionInputError(
            "rows",
            f"this model needs the last {exc.needed} rows of history{who} (in time order), got {exc.got}",
            version=served.label,
            needed_rows=exc.needed,
        )
    return PredictionInputError(exc.field, exc.message, version=served.label)


def _in_signature_order(served: ServedVersion, X: np.ndarray) -> np.ndarray:
    """The preprocessor's feature columns in the order the model was trained on (the signature's)."""
    names = served.loaded.signature.get("feature_names")
    own = served.loaded.preprocessor.feature_names
    if not names or list(names) == list(own):
        return X
    return X[:, [own.index(name) for name in names]]


def model_inputs(served: ServedVersion, tables: list[CheckedRows]) -> list:
    """Each request's ModelInput, or the PredictionInputError that is its answer, computed together
    where the model allows (see the module docstring)."""
    from apps.datasets.preprocessing import InsufficientHistory, InvalidInput

    loaded, pre = served.loaded, served.loaded.preprocessor
    if loaded.window > 1:
        out = []
        for table in tables:
            try:
                X, _, labels = loaded.features(table.to_frame())
                out.append(ModelInput(X, labels))
            except (InvalidInput, InsufficientHistory) as exc:
                out.append(_input_error(served, exc))
        return out
    if not pre.needs_history and len(tables) > 1:
        try:
            X, labels = pre.serving_matrix(CheckedRows.concat(tables))
        except InvalidInput:
            pass  # one request's bad value: find it below, each request on its own
        else:
            X = _in_signature_order(served, X)
            out, offset = [], 0
            for table in tables:
                n = len(table)
                own = labels[offset : offset + n]
                if not served.spec.entity_column and not served.spec.time_column:
                    own = [str(i) for i in range(n)]  # labelled by position in its own request
                out.append(ModelInput(X[offset : offset + n], own))
                offset += n
            return out
    out = []
    for outcome in pre.serving_matrices(tables):
        if isinstance(outcome, Exception):
            out.append(_input_error(served, outcome))
        else:
            out.append(ModelInput(_in_signature_order(served, outcome[0]), outcome[1]))
    return out


class Predictor:
    def __init__(self, state=serving_state):
        self.state = state
        self._shadow_pool: ThreadPoolExecutor | None = None
        self._shadow_pending = 0
        self._shadow_lock = threading.Lock()

    def table(self, deployment: str) -> ServingTable:
        return self.state.table(deployment)

    def prepare(
        self,
        *,
        table: ServingTable,
        body: dict,
        protocol: str,
        raw_body: bytes,
        routing_key: str | None,
        started: float,
        served_at: float | None = None,
        version: str | None = None,
    ) -> Prepared:
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
            self._push(
                [
                    self._entry(
                        table,
                        broken,
                        request_id,
                        started,
                        PredictionStatus.SERVER_ERROR,
                        inputs_hash,
                        key_hash,
                        error=broken.reason,
                        served_at=served_at,
                    )
                ]
            )
            raise ModelUnavailable(broken.reason)
        served = table.versions[version_id]
        try:
            if not is_classifier(served) and probabilities_requested(protocol, body):
                raise InputError(
                    probabilities_field(protocol),
                    f"class probabilities are for classification models; version {served.label} "
                    f"is a {served.task} model",
                )
            columns = parse_v2(body, served.spec) if protocol == "v2" else parse_mlflow(body, served.spec)[0]
            rows = check_columns(columns, served.spec, known=table.known_columns, max_rows=max_batch_rows())
        except InputError as exc:
            self._push(
                [
                    self._entry(
                        table,
                        served,
                        request_id,
                        started,
                        PredictionStatus.CLIENT_ERROR,
                        inputs_hash,
                        key_hash,
                        error=str(exc),
                        served_at=served_at,
                    )
                ]
            )
            raise PredictionInputError(exc.field, exc.message, version=served.label) from None
        return Prepared(
            table=table,
            served=served,
            request_id=request_id,
            columns=columns,
            rows=rows,
            inputs_hash=inputs_hash,
            key_hash=key_hash,
            started=started,
            served_at=served_at,
            pinned=version is not None,
        )

    def predict(
        self,
        *,
        deployment: str,
        body: dict,
        protocol: str,
        raw_body: bytes,
        routing_key: str | None = None,
        started: float | None = None,
        served_at: float | None = None,
        version: str | None = None,
    ) -> Prediction:
        """Serves one request. `protocol` is "mlflow" or "v2"; `started` a perf_counter() taken when the
        request arrived (the logged latency covers everything from there to the answer); `served_at`
        (epoch seconds) only when replaying recorded traffic, e.g. the demo's history."""
        started = time.perf_counter() if started is None else started
        table = self.table(deployment)
        with self.state.routing():
            prepared = self.prepare(
                table=table,
                body=body,
                protocol=protocol,
                raw_body=raw_body,
                routing_key=routing_key,
                started=started,
                served_at=served_at,
                version=version,
            )
            self.run_batch([prepared])
        return self.result(prepared)

    def run_batch(self, batch: list[Prepared]) -> None:
        """Predicts every prepared request (all of one model version when more than one), logs each
        answer in one Redis pipeline, and leaves each request's outcome on it. Rows of several requests
        go through one model call (see the module docstring); if that call fails, each request is
        retried alone so an error is charged to the request that caused it."""
        served = batch[0].served
        inputs = self._inputs(served, [item.rows for item in batch])
        ready = [
            (item, model_input) for item, model_input in zip(batch, inputs) if not isinstance(model_input, Exception)
        ]
        for item, model_input in zip(batch, inputs):
            if isinstance(model_input, Exception):
                item.outcome = model_input
        if len(ready) == 1:
            ready[0][0].outcome = self._call(served, ready[0][1])
        elif ready:
            combined = ModelInput(np.concatenate([m.X for _, m in ready]), [lbl for _, m in ready for lbl in m.labels])
            outcome = self._call(served, combined)
            if isinstance(outcome, Exception):
                for item, model_input in ready:
                    item.outcome = self._call(served, model_input)
            else:
                self._split(ready, *outcome)
        entries = []
        for item in batch:
            if isinstance(item.outcome, PredictionInputError):
                entries.append(
                    self._entry(
                        item.table,
                        item.served,
                        item.request_id,
                        item.started,
                        PredictionStatus.CLIENT_ERROR,
                        item.inputs_hash,
                        item.key_hash,
                        error=str(item.outcome),
                        served_at=item.served_at,
                    )
                )
            elif isinstance(item.outcome, Exception):
                entries.append(
                    self._entry(
                        item.table,
                        item.served,
                        item.request_id,
                        item.started,
                        PredictionStatus.SERVER_ERROR,
                        item.inputs_hash,
                        item.key_hash,
                        error=f"{type(item.outcome).__name__}: {item.outcome}",
                        served_at=item.served_at,
                    )
                )
            else:
                entries.append(
                    self._entry(
                        item.table,
                        item.served,
                        item.request_id,
                        item.started,
                        PredictionStatus.OK,
                        item.inputs_hash,
                        item.key_hash,
                        output=item.outcome[0],
                        n_rows=item.n_rows,
                        features=_drift_sample(item.rows, item.served),
                        served_at=item.served_at,
                        probabilities=item.outcome[2],
                    )
                )
        self._push(entries)
        for item in batch:
            if not isinstance(item.outcome, Exception) and item.table.router.shadow_ids and not item.pinned:
                self._shadow(item.table, item.columns, item.request_id, item.inputs_hash, item.key_hash)

    def result(self, item: Prepared) -> Prediction:
        """The answer for a request after run_batch, or its error raised."""
        if isinstance(item.outcome, PredictionInputError):
            raise item.outcome
        if isinstance(item.outcome, Exception):
            raise PredictionFailed(
                f"model version {item.served.label} failed: {type(item.outcome).__name__}"
            ) from item.outcome
        predictions, labels, probabilities = item.outcome
        classes = None
        if probabilities is not None:
            width = len(probabilities[0]) if probabilities else len(getattr(item.served.loaded, "classes", None) or ())
            classes = class_labels(item.served, width)
        return Prediction(
            request_id=item.request_id,
            deployment=item.table.name,
            model_name=item.served.model_name,
            model_version=item.served.label,
            version_id=item.served.version_id,
            task=item.served.task,
            predictions=predictions,
            row_labels=labels,
            latency_ms=(time.perf_counter() - item.started) * 1000,
            probabilities=probabilities,
            classes=classes,
        )

    @staticmethod
    def _inputs(served: ServedVersion, tables: list[CheckedRows]) -> list:
        try:
            return model_inputs(served, tables)
        except Exception as exc:
            if len(tables) == 1:
                logger.exception("preparing the input of %s v%s failed", served.model_name, served.version)
                return [exc]
            # A bug one request triggers in the shared pass: each alone, so it fails by itself.
            return [Predictor._inputs(served, [table])[0] for table in tables]

    def _call(self, served: ServedVersion, model_input: ModelInput):
        try:
            return _run_model(served, model_input)
        except Exception as exc:
            logger.exception("%s v%s failed on %d rows", served.model_name, served.version, len(model_input))
            return exc

    @staticmethod
    def _split(
        ready: list[tuple[Prepared, ModelInput]], predictions: list, labels: list, probabilities: list | None
    ) -> None:
        offset = 0
        for item, model_input in ready:
            n = len(model_input)
            own_probabilities = probabilities[offset : offset + n] if probabilities is not None else None
            item.outcome = (predictions[offset : offset + n], model_input.labels, own_probabilities)
            offset += n

    @staticmethod
    def _entry(
        table,
        served,
        request_id,
        started,
        status,
        inputs_hash,
        key_hash,
        *,
        output=None,
        n_rows=0,
        features=None,
        error="",
        shadow=False,
        served_at=None,
        probabilities=None,
    ) -> tuple[dict, tuple[str, str]]:
        entry = log_entry(
            request_id=request_id,
            deployment_id=table.deployment_id,
            version_id=served.version_id,
            shadow=shadow,
            status=status,
            latency_ms=(time.perf_counter() - started) * 1000,
            n_rows=n_rows,
            inputs_hash=inputs_hash,
            output=output or [],
            error=error,
            routing_key_hash=key_hash,
            features=features,
            served_at=served_at,
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
            rows = check_columns(columns, served.spec, known=table.known_columns, max_rows=max_batch_rows())
            model_input = model_inputs(served, [rows])[0]
            if isinstance(model_input, Exception):
                raise model_input
            predictions, _, probabilities = _run_model(served, model_input)
        except InputError as exc:
            entry = self._entry(
                table,
                served,
                request_id,
                started,
                PredictionStatus.CLIENT_ERROR,
                inputs_hash,
                key_hash,
                error=str(exc),
                shadow=True,
            )
        except Exception as exc:
            logger.exception("shadow %s v%s failed", served.model_name, served.version)
            entry = self._entry(
                table,
                served,
                request_id,
                started,
                PredictionStatus.SERVER_ERROR,
                inputs_hash,
                key_hash,
                error=f"{type(exc).__name__}: {exc}",
                shadow=True,
            )
        else:
            entry = self._entry(
                table,
                served,
                request_id,
                started,
                PredictionStatus.OK,
                inputs_hash,
                key_hash,
                output=predictions,
                n_rows=len(rows),
                features=_drift_sample(rows, served),
                shadow=True,
                probabilities=probabilities,
            )
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
