"""Ground truth for served predictions, matched by request id, scored per model version."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.core.errors import StateConflict
from apps.datasets.choices import DatasetTask

from ..calibration import confidence_bin, empty_calibration, row_log_loss
from ..choices import PredictionStatus
from ..models import Feedback, PredictionLog
from .logbuffer import prediction_logs_flush
from .rollups import rollup_sums_for_feedback, rollups_add

MAX_FEEDBACK_ITEMS = 1000
MAX_REGRESSION_TRUTH = 1e15


@dataclass(frozen=True)
class FeedbackResult:
    requests: int
    answers_scored: int


class FeedbackConflict(StateConflict):
    """Ground truth for a request that already has a different one (the API answers 409)."""

    def __init__(self, field: str, message: str):
        super().__init__({field: [message]})
        self.field = field
        self.message = message


def same_label(predicted, truth) -> bool:
    """Class labels compare as numbers when both are numbers (1 == 1.0), otherwise as text."""
    if isinstance(predicted, (int, float)) and isinstance(truth, (int, float)) and not isinstance(truth, bool):
        return float(predicted) == float(truth)
    return str(predicted) == str(truth)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _truth_list(value, n: int, field: str, task: str, classes: list | None = None) -> list:
    """The request's ground truth, one checked value per prediction. A classifier's labels must be
    among the version's classes when its signature names them (a label it can never predict would
    only count as a wrong answer and move the gates)."""
    values = value if isinstance(value, list) else [value]
    if len(values) != n:
        raise ValidationError(
            {field: f"this request had {n} prediction(s); send {n} ground-truth value(s), got {len(values)}"}
        )
    for i, item in enumerate(values):
        if task == DatasetTask.REGRESSION:
            # Bounded, not just finite: squared errors, and their squares for the sequential test, must
            # stay finite floats. (The comparison is False for NaN and exact for ints of any size.)
            if isinstance(item, bool) or not isinstance(item, (int, float)) or not abs(item) <= MAX_REGRESSION_TRUTH:
                raise ValidationError(
                    {field: f"value {i}: expected a finite number within ±{MAX_REGRESSION_TRUTH:g}, got {_short(item)}"}
                )
        elif item is None or isinstance(item, (list, dict)):
            raise ValidationError({field: f"value {i}: expected a class label, got {item!r}"})
        elif (isinstance(item, str) and "\x00" in item) or (isinstance(item, float) and not abs(item) < float("inf")):
            # jsonb stores neither NUL nor NaN/Infinity.
            raise ValidationError({field: f"value {i}: expected a class label, got {_short(item)}"})
        elif classes and not any(same_label(c, item) for c in classes):
            allowed = ", ".join(_short(c) for c in classes)
            raise ValidationError(
                {field: f"value {i}: {_short(item)} is not one of the model's classes; allowed: {allowed}"}
            )
    return values


def _same_truth(stored, values: list) -> bool:
    if not isinstance(stored, list) or len(stored) != len(values):
        return False
    return all(same_label(a, b) and isinstance(a, bool) == isinstance(b, bool) for a, b in zip(stored, values))


def _probability_scores(log: PredictionLog, truth: list) -> dict:
    """Log-loss sum and calibration counts (apps.monitoring.calibration) of a classifier's answer
    that kept its probabilities; nothing for one logged without them."""
    rows = log.probabilities
    if not rows or len(rows) != len(truth):
        return {"log_loss_sum": None, "calibration": None}
    width = len(rows[0])
    classes = (log.model_version.signature or {}).get("classes") or list(range(width))
    log_loss = 0.0
    calibration = empty_calibration()
    for row, predicted, label in zip(rows, log.output, truth):
        column = next((j for j, c in enumerate(classes) if same_label(c, label)), None)
        log_loss += row_log_loss(row[column] if column is not None and column < len(row) else 0.0)
        confidence = float(max(row))
        k = confidence_bin(confidence)
        calibration["count"][k] += 1
        calibration["correct"][k] += int(same_label(predicted, label))
        calibration["confidence"][k] += confidence
    return {"log_loss_sum": log_loss, "calibration": calibration}


def _score(log: PredictionLog, truth: list, task: str) -> dict:
    if task == DatasetTask.REGRESSION:
        errors = [(float(p) - float(t)) ** 2 for p, t in zip(log.output, truth)]
        return {
            "n": len(errors),
            "n_correct": None,
            "sq_error_sum": sum(errors),
            "sq_error_sq_sum": sum(e * e for e in errors),
            "log_loss_sum": None,
            "calibration": None,
        }
    correct = sum(1 for p, t in zip(log.output, truth) if same_label(p, t))
    return {
        "n": len(truth),
        "n_correct": correct,
        "sq_error_sum": None,
        "sq_error_sq_sum": None,
        **_probability_scores(log, truth),
    }


def feedback_record(*, deployment, items: list, user=None) -> FeedbackResult:
    """Stores ground truth for earlier requests of `deployment`: each item is
    `{"request_id": <uuid>, "ground_truth": <value, or a list with one value per prediction>}`.

    Every logged answer of the request (the served one and any shadow copy) is scored, so the
    challenger's accuracy is known in shadow mode too. Ground truth is written once: sending the same
    value again changes nothing, a different one raises FeedbackConflict (a 409), since the first
    already moved the gates. All or nothing: every item is checked before anything is written, and
    one bad or conflicting item rejects the batch, naming it.

    Not one transaction from the top on purpose: the log flush it may need must commit on its own,
    so the other web processes' writers (whose progress it waits for) and this one agree on what is stored.
    """
    if not isinstance(items, list) or not items:
        raise ValidationError({"feedback": "send a non-empty array of {request_id, ground_truth}"})
    if len(items) > MAX_FEEDBACK_ITEMS:
        raise ValidationError({"feedback": f"{len(items)} items is more than the limit of {MAX_FEEDBACK_ITEMS}"})
    parsed: dict[uuid.UUID, tuple[int, object]] = {}
    for i, item in enumerate(items):
        field = f"feedback[{i}]"
        if not isinstance(item, dict):
            raise ValidationError({field: "expected an object {request_id, ground_truth}"})
        unknown = set(item) - {"request_id", "ground_truth"}
        if unknown:
            raise ValidationError({f"{field}.{sorted(unknown)[0]}": "unknown field"})
        if "ground_truth" not in item:
            raise ValidationError({f"{field}.ground_truth": "this field is required"})
        try:
            request_id = uuid.UUID(str(item.get("request_id")))
        except ValueError:
            raise ValidationError({f"{field}.request_id": f"{item.get('request_id')!r} is not a request id"}) from None
        if request_id in parsed:
            raise ValidationError({f"{field}.request_id": f"{request_id} appears twice in this batch"})
        parsed[request_id] = (i, item["ground_truth"])

    def logs_by_request():
        grouped: dict[uuid.UUID, list[PredictionLog]] = {}
        for log in PredictionLog.objects.filter(deployment=deployment, request_id__in=list(parsed)).select_related(
            "model_version"
        ):
            grouped.setdefault(log.request_id, []).append(log)
        return grouped

    if len(logs_by_request()) < len(parsed):
        # Answers from the last few seconds may still sit in the buffer.
        prediction_logs_flush()
    with transaction.atomic():
        return _feedback_store(deployment=deployment, parsed=parsed, logs=logs_by_request())


SCORE_FIELDS = ["n", "n_correct", "sq_error_sum", "sq_error_sq_sum", "log_loss_sum", "calibration"]


def _feedback_store(*, deployment, parsed: dict, logs: dict) -> FeedbackResult:
    now = timezone.now()
    scored = 0
    rows = []
    fields = {}
    log_ids = [log.pk for answers in logs.values() for log in answers]
    stored = dict(Feedback.objects.filter(prediction_id__in=log_ids).values_list("prediction_id", "ground_truth"))
    for request_id, (i, truth) in parsed.items():
        field = f"feedback[{i}]"
        answers = logs.get(request_id)
        if not answers:
            raise ValidationError(
                {f"{field}.request_id": f"no prediction of deployment {deployment.name!r} has request id {request_id}"}
            )
        for log in answers:
            if log.status != PredictionStatus.OK:
                continue
            version = log.model_version
            values = _truth_list(
                truth,
                len(log.output),
                f"{field}.ground_truth",
                version.task,
                classes=(version.signature or {}).get("classes"),
            )
            scored += 1
            if log.pk in stored:
                _check_repeat(stored[log.pk], values, field, request_id)
                continue
            fields[log.pk] = (field, request_id, values)
            rows.append(
                Feedback(
                    prediction=log,
                    deployment=deployment,
                    model_version_id=log.model_version_id,
                    shadow=log.shadow,
                    ground_truth=values,
                    served_at=log.served_at,
                    received_at=now,
                    **_score(log, values, version.task),
                )
            )
    # Insert-or-nothing, then read back: a concurrent sender's row cannot be locked before it exists,
    # so ON CONFLICT waits for that sender's commit and the read-back says whether it sent the same.
    # Only the rows this call created go into the rollups (into the minute each answer was served in),
    # so two senders of the same truth count it once.
    created = _insert_new(rows)
    rollups_add(rollup_sums_for_feedback(created))
    for log_id, truth in Feedback.objects.filter(prediction_id__in=list(fields)).values_list(
        "prediction_id", "ground_truth"
    ):
        field, request_id, values = fields[log_id]
        _check_repeat(truth, values, field, request_id)
    return FeedbackResult(requests=len(parsed), answers_scored=scored)


def _insert_new(rows: list[Feedback]) -> list[Feedback]:
    """INSERT … ON CONFLICT DO NOTHING of `rows`; returns the ones it created."""
    if not rows:
        return []
    connection = transaction.get_connection()
    if connection.vendor != "postgresql":
        # SQLite runs one writing transaction at a time: what was not stored at the read is new.
        Feedback.objects.bulk_create(rows)
        return rows
    fields = [f for f in Feedback._meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    placeholder = "(" + ", ".join(["%s"] * len(fields)) + ")"
    created = set()
    with connection.cursor() as cursor:
        for start in range(0, len(rows), 500):
            chunk = rows[start : start + 500]
            cursor.execute(
                f"INSERT INTO {quote(Feedback._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
                f"VALUES {', '.join([placeholder] * len(chunk))} ON CONFLICT DO NOTHING "
                f"RETURNING {quote(Feedback._meta.get_field('prediction').column)}",
                [f.get_db_prep_save(getattr(row, f.attname), connection) for row in chunk for f in fields],
            )
            created.update(prediction_id for (prediction_id,) in cursor.fetchall())
    return [row for row in rows if row.prediction_id in created]


def _check_repeat(stored, values: list, field: str, request_id) -> None:
    if not _same_truth(stored, values):
        raise FeedbackConflict(
            f"{field}.ground_truth",
            f"request {request_id} already has ground truth {_short(stored)}; it is recorded once "
            f"and a different value ({_short(values)}) is refused",
        )
