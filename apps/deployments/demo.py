"""Demo deployment for `manage.py seed_demo`: "price-direction" with the registry's champion at 90%
and its challenger at 10% in a running rollout, plus an hour of replayed traffic with ground truth
so the dashboard has something to show. Idempotent: an existing deployment is kept, and traffic is
replayed only while the deployment has no prediction logs.

The traffic is real: the demo prices' rows go through the same prediction path as API requests
(routing with sticky portfolio keys, each version's own preprocessor, the log buffer), stamped over
the last hour; the ground truth is the next day's direction from the same data.
"""

import json
import time

from django.contrib.auth import get_user_model

NAME = "price-direction"
DATASET = "demo-prices"
REQUESTS = 240
REPLAY_SECONDS = 3600
DEMO_STAGES = [
    {"percent": 10, "min_duration_s": 1800, "min_predictions": 500, "min_feedback": 300},
    {"percent": 50, "min_duration_s": 1800, "min_predictions": 1000, "min_feedback": 500},
    {"percent": 100, "min_duration_s": 1800, "min_predictions": 500, "min_feedback": 0},
]


def _versions():
    from apps.registry.models import ModelAlias, RegisteredModel

    model = RegisteredModel.objects.filter(name=NAME).first()
    if model is None:
        return None, None
    aliases = {a.alias: a.version for a in ModelAlias.objects.filter(registered_model=model).select_related("version")}
    versions = list(model.versions.order_by("version"))
    champion = aliases.get("champion") or (versions[0] if versions else None)
    challenger = aliases.get("challenger") or next((v for v in reversed(versions) if v != champion), None)
    return champion, challenger


def _replay_traffic(deployment, stdout) -> None:
    from apps.datasets.models import Dataset
    from apps.datasets.selectors import dataset_version_dataframe, dataset_version_latest
    from apps.monitoring.services.logbuffer import prediction_logs_flush

    from .selectors import deployment_signature
    from .services.model_deployment_service import PredictionInputError, feedback_record, predict

    dataset = Dataset.objects.filter(name=DATASET).first()
    version = dataset_version_latest(dataset=dataset) if dataset else None
    if version is None:
        stdout.write(f"deployment demo: no traffic replayed, dataset {DATASET!r} is missing")
        return
    signature = deployment_signature(deployment=deployment)
    columns = [c["name"] for c in signature["inputs"]]
    history = int(signature["history_rows"])
    entity, time_column = signature["entity_column"], signature["time_column"]
    frame = dataset_version_dataframe(version=version).sort_values([entity, time_column], kind="stable")
    target = dataset.target_column
    frame["next_up"] = frame.groupby(entity)[target].shift(-1) > frame[target]
    frame["has_next"] = frame.groupby(entity)[target].shift(-1).notna()
    by_entity = {key: group.reset_index(drop=True) for key, group in frame.groupby(entity, sort=True)}
    entities = sorted(by_entity)
    now = time.time()
    feedback, served, refused = [], 0, 0
    for i in range(REQUESTS):
        ticker = entities[i % len(entities)]
        rows = by_entity[ticker]
        end = len(rows) - 2 - (REQUESTS - i) // len(entities)  # walk forward through the last days
        window = rows.iloc[max(0, end - history + 1) : end + 1]
        body = {"dataframe_records": json.loads(window[columns].to_json(orient="records", date_format="iso"))}
        try:
            result = predict(
                deployment=deployment.name,
                body=body,
                raw_body=json.dumps(body).encode(),
                routing_key=f"portfolio-{i % 37}",
                served_at=now - REPLAY_SECONDS * (1 - i / REQUESTS),
            )
        except PredictionInputError as exc:
            refused += 1
            stdout.write(f"deployment demo: a replayed request was refused: {exc}")
            continue
        served += 1
        last = window.iloc[-1]
        if bool(last["has_next"]):
            feedback.append(
                {"request_id": result.request_id, "ground_truth": "up" if bool(last["next_up"]) else "down"}
            )
    prediction_logs_flush()
    if feedback:
        feedback_record(deployment=deployment, items=feedback)
    stdout.write(
        f"deployment demo: replayed {served} requests ({refused} refused) with {len(feedback)} labels "
        f"over the last hour"
    )


def seed(*, stdout) -> None:
    from apps.monitoring.models import PredictionLog

    from .models import Deployment
    from .services.model_deployment_service import deployment_create, rollout_create

    user = get_user_model().objects.filter(username="staff").first()
    deployment = Deployment.objects.filter(name=NAME).first()
    if deployment is None:
        champion, challenger = _versions()
        if champion is None:
            stdout.write(f"deployment demo skipped: no registered model {NAME!r} (seed training first)")
            return
        deployment = deployment_create(
            name=NAME, model_version=champion, user=user, description="Next-day direction of the demo tickers."
        )
        stdout.write(f"deployment {NAME!r} serves {champion} at 100%")
        if challenger is not None:
            rollout_create(
                deployment=deployment,
                challenger=challenger,
                stages=DEMO_STAGES,
                user=user,
                start=True,
                reason="demo seed: challenger on 10% of traffic",
            )
            stdout.write(f"rollout: {champion} 90% / {challenger} 10%")
    else:
        stdout.write(f"deployment {NAME!r} already exists")
    if not PredictionLog.objects.filter(deployment=deployment).exists():
        _replay_traffic(deployment, stdout)
