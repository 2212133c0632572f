"""Gates decide rollouts from real traffic and real feedback: advance, complete, roll back."""

import pytest

from apps.deployments.choices import EventKind, RolloutStatus
from apps.deployments.models import DeploymentEvent, DeploymentVersion, Rollout
from apps.deployments.services.model_deployment_service import rollout_create, rollouts_evaluate_all

from .conftest import classification_frame, wait_until

PREDICT = "/api/v1/deployments/price-direction/predict"
FEEDBACK = "/api/v1/deployments/price-direction/feedback"
QUICK_STAGES = [
    {"percent": 10, "min_duration_s": 0, "min_predictions": 3, "min_feedback": 40},
    {"percent": 50, "min_duration_s": 0, "min_predictions": 3, "min_feedback": 40},
    {"percent": 100, "min_duration_s": 0, "min_predictions": 3, "min_feedback": 0},
]
QUICK_GATES = {"min_feedback_per_arm": 40, "min_requests_for_health": 3, "max_p99_ms": 10_000, "max_error_rate": 0.2}


def serve_and_label(client, labeller, *, requests: int, rows_per_request: int = 20, seed: int = 0) -> dict[str, int]:
    """Sends labelled rows for prediction (as `client`), then their true labels as feedback (as
    `labeller`, ML Staff); returns requests per version."""
    frame = classification_frame(n=requests * rows_per_request, seed=100 + seed)
    per_version: dict[str, int] = {}
    feedback = []
    for i in range(requests):
        chunk = frame.iloc[i * rows_per_request : (i + 1) * rows_per_request]
        response = client.post(
            PREDICT,
            {"dataframe_split": {"columns": ["f1", "f2", "f3"], "data": chunk[["f1", "f2", "f3"]].values.tolist()}},
            format="json",
        )
        assert response.status_code == 200, response.content
        data = response.json()
        per_version[data["model_version"]] = per_version.get(data["model_version"], 0) + 1
        feedback.append({"request_id": data["request_id"], "ground_truth": chunk["label"].tolist()})
    response = labeller.post(FEEDBACK, {"feedback": feedback}, format="json")
    assert response.status_code == 200, response.content
    return per_version


def challenger_share(rollout) -> float:
    return DeploymentVersion.objects.get(deployment=rollout.deployment, model_version=rollout.challenger).weight


@pytest.fixture
def poor_champion_deployment(make_version, staff_user, django_capture_on_commit_callbacks):
    """Champion trained on labels 35% flipped; challenger on clean labels: clearly better."""
    from apps.deployments.services.model_deployment_service import deployment_create

    champion = make_version(seed=0, flip=0.35)
    challenger = make_version(seed=1)
    with django_capture_on_commit_callbacks(execute=True):
        deployment = deployment_create(name="price-direction", model_version=champion, user=staff_user)
    return deployment, champion, challenger


def test_a_clearly_worse_challenger_is_rolled_back_automatically(
    deployment, make_version, staff_user, analyst_api, staff_api, django_capture_on_commit_callbacks
):
    worse = make_version(seed=1, flip=0.45)
    with django_capture_on_commit_callbacks(execute=True):
        rollout = rollout_create(
            deployment=deployment, challenger=worse, stages=QUICK_STAGES, gates=QUICK_GATES, user=staff_user, start=True
        )
    for round_ in range(8):
        with django_capture_on_commit_callbacks(execute=True):
            serve_and_label(analyst_api, staff_api, requests=40, seed=round_)
            rollouts_evaluate_all()
        rollout.refresh_from_db()
        if rollout.status != RolloutStatus.RUNNING:
            break
    assert rollout.status == RolloutStatus.ROLLED_BACK
    assert rollout.stage_index == 0, "it never reached 50%"
    event = DeploymentEvent.objects.get(rollout=rollout, kind=EventKind.ROLLOUT_ROLLED_BACK)
    assert event.actor_label == "gate-evaluator" and event.actor is None
    assert "accuracy_vs_champion failed" in event.reason
    assert event.metrics["sequential_test"]["decision"] == "worse"
    assert event.metrics["challenger"]["accuracy"] < event.metrics["champion"]["accuracy"]
    assert challenger_share(rollout) == 0
    assert analyst_api.post(PREDICT, {"instances": [{"f1": 1, "f2": 0, "f3": 0}]}, format="json").json()[
        "model_version"
    ] == str(deployment.versions.get(weight=100).model_version.version)


def test_a_challenger_over_the_latency_limit_is_rolled_back_by_the_health_gate(
    deployment, challenger, staff_user, analyst_api, staff_api, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        rollout = rollout_create(
            deployment=deployment,
            challenger=challenger,
            stages=QUICK_STAGES,
            user=staff_user,
            start=True,
            gates={**QUICK_GATES, "max_p99_ms": 0.001},
        )
    for round_ in range(6):
        with django_capture_on_commit_callbacks(execute=True):
            serve_and_label(analyst_api, staff_api, requests=30, rows_per_request=2, seed=round_)
            rollouts_evaluate_all()
        rollout.refresh_from_db()
        if rollout.status != RolloutStatus.RUNNING:
            break
    assert rollout.status == RolloutStatus.ROLLED_BACK
    assert (
        "p99_latency_ms failed"
        in DeploymentEvent.objects.get(rollout=rollout, kind=EventKind.ROLLOUT_ROLLED_BACK).reason
    )


def test_gates_wait_for_the_stage_minimums_and_say_what_they_wait_for(
    deployment, challenger, staff_user, analyst_api, staff_api, django_capture_on_commit_callbacks
):
    stages = [{**QUICK_STAGES[0], "min_duration_s": 3600}, QUICK_STAGES[1], QUICK_STAGES[2]]
    with django_capture_on_commit_callbacks(execute=True):
        rollout = rollout_create(
            deployment=deployment, challenger=challenger, stages=stages, gates=QUICK_GATES, user=staff_user, start=True
        )
        serve_and_label(analyst_api, staff_api, requests=10, seed=1)
        assert rollouts_evaluate_all() == {rollout.pk: "hold"}
    rollout.refresh_from_db()
    assert rollout.status == RolloutStatus.RUNNING and rollout.stage_index == 0
    gates = {g["name"]: g for g in rollout.gate_status["gates"]}
    assert gates["min_duration"]["state"] == "pending"
    assert "min_duration" in rollout.gate_status["reason"]
    detail = analyst_api.get("/api/v1/deployments/price-direction").json()
    assert detail["rollout"]["gate_status"]["action"] == "hold"


@pytest.mark.worker
def test_a_better_challenger_is_advanced_10_50_100_and_completed_by_the_beat_task(
    celery_worker, make_version, staff_user, analyst_api, staff_api
):
    """The gate task runs in the real worker, as beat sends it; traffic and feedback come through the API."""
    from mlops_portal.celery import app

    from apps.deployments.services.model_deployment_service import deployment_create

    champion = make_version(seed=0, flip=0.35)
    challenger = make_version(seed=1)
    deployment = deployment_create(name="price-direction", model_version=champion, user=staff_user)
    rollout = rollout_create(
        deployment=deployment,
        challenger=challenger,
        stages=QUICK_STAGES,
        gates=QUICK_GATES,
        user=staff_user,
        start=True,
    )
    seen_percents = [challenger_share(rollout)]
    for round_ in range(12):
        served = serve_and_label(analyst_api, staff_api, requests=30, seed=round_)
        assert set(served) <= {str(champion.version), str(challenger.version)}
        before = Rollout.objects.values_list("stage_index", "status").get(pk=rollout.pk)
        app.send_task("deployments.evaluate_rollouts", queue="default")
        assert wait_until(lambda: Rollout.objects.filter(pk=rollout.pk).exclude(evaluated_at=None).exists(), timeout=30)
        wait_until(lambda: Rollout.objects.values_list("stage_index", "status").get(pk=rollout.pk) != before, timeout=5)
        rollout.refresh_from_db()
        if challenger_share(rollout) != seen_percents[-1]:
            seen_percents.append(challenger_share(rollout))
        if rollout.status != RolloutStatus.RUNNING:
            break
    assert rollout.status == RolloutStatus.COMPLETED, rollout.gate_status
    assert seen_percents == [10.0, 50.0, 100.0]
    events = list(DeploymentEvent.objects.filter(rollout=rollout).order_by("created_at", "id"))
    automatic = [e for e in events if e.actor_label == "gate-evaluator"]
    assert [e.kind for e in automatic] == [
        EventKind.STAGE_ADVANCED,
        EventKind.STAGE_ADVANCED,
        EventKind.ROLLOUT_COMPLETED,
    ]
    promotion = automatic[1]
    assert promotion.metrics["sequential_test"]["decision"] == "better"
    assert DeploymentVersion.objects.get(deployment=deployment, model_version=challenger).weight == 100.0


def test_a_pause_that_lands_while_the_gates_are_computed_is_not_undone_by_their_decision(
    deployment, challenger, staff_user, monkeypatch
):
    from apps.deployments.services import gates as gates_module
    from apps.deployments.services.rollouts import rollout_transition

    rollout = rollout_create(deployment=deployment, challenger=challenger, user=staff_user, start=True)
    computed = gates_module.rollout_gates_check

    def staff_pauses_meanwhile(*, rollout, now=None):
        report = computed(rollout=rollout, now=now)
        rollout_transition(rollout=rollout, action="pause", user=staff_user, reason="looks odd, hold")
        return gates_module.GateReport(gates_module.ADVANCE, "all gates passed", report.gates, report.metrics, 0)

    monkeypatch.setattr(gates_module, "rollout_gates_check", staff_pauses_meanwhile)
    gates_module.rollout_evaluate(rollout_id=rollout.pk)
    rollout.refresh_from_db()
    assert (rollout.status, rollout.stage_index) == (RolloutStatus.PAUSED, 0)
    assert not rollout.events.filter(kind=EventKind.STAGE_ADVANCED).exists()


NO_FEEDBACK_NEEDED_STAGES = [
    {"percent": 10, "min_duration_s": 0, "min_predictions": 3, "min_feedback": 0},
    {"percent": 50, "min_duration_s": 0, "min_predictions": 3, "min_feedback": 0},
    {"percent": 100, "min_duration_s": 0, "min_predictions": 3, "min_feedback": 0},
]


def serve_until_the_challenger_answered(client, challenger, *, times: int) -> None:
    """Unlabelled traffic until the challenger (10% of keys, chosen at random) has answered `times`
    requests, so the stage's traffic minimums are surely met."""
    frame = classification_frame(n=2000, seed=7)
    answered = 0
    for i in range(400):
        chunk = frame.iloc[i * 5 : (i + 1) * 5]
        response = client.post(
            PREDICT,
            {"dataframe_split": {"columns": ["f1", "f2", "f3"], "data": chunk[["f1", "f2", "f3"]].values.tolist()}},
            format="json",
        )
        assert response.status_code == 200, response.content
        answered += response.json()["model_version"] == str(challenger.version)
        if answered >= times:
            return
    raise AssertionError(f"the challenger answered {answered} of 400 requests")


@pytest.fixture
def unlabelled_rollout(deployment, challenger, staff_user, analyst_api, django_capture_on_commit_callbacks):
    """A running rollout whose stage minimums ask for no feedback, with traffic but no feedback at all."""
    with django_capture_on_commit_callbacks(execute=True):
        rollout = rollout_create(
            deployment=deployment,
            challenger=challenger,
            stages=NO_FEEDBACK_NEEDED_STAGES,
            gates=QUICK_GATES,
            user=staff_user,
            start=True,
        )
    serve_until_the_challenger_answered(analyst_api, challenger, times=5)
    return rollout


def test_the_accuracy_gate_is_pending_not_passing_while_no_feedback_has_come(unlabelled_rollout):
    from apps.deployments.services.gates import rollout_gates_check

    report = rollout_gates_check(rollout=Rollout.objects.get(pk=unlabelled_rollout.pk))
    gates = {g["name"]: g for g in report.gates}
    accuracy = gates["accuracy_vs_champion"]
    assert accuracy["state"] == "pending"
    assert accuracy["label"] == "Accuracy vs the champion"
    assert "40 labelled rows per version" in accuracy["detail"] and "champion 0, challenger 0" in accuracy["detail"]
    assert gates["min_feedback"]["label"] == "Labelled challenger rows in this stage"
    assert report.action == "hold" and "accuracy_vs_champion" in report.reason


def test_a_rollout_whose_accuracy_gate_is_pending_does_not_advance(
    unlabelled_rollout, django_capture_on_commit_callbacks
):
    """Every other gate passes (minimums of 0 feedback, healthy traffic); without feedback the
    comparison with the champion has not decided, so the evaluator holds at 10%."""
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            assert rollouts_evaluate_all() == {unlabelled_rollout.pk: "hold"}
    rollout = Rollout.objects.get(pk=unlabelled_rollout.pk)
    assert (rollout.status, rollout.stage_index) == (RolloutStatus.RUNNING, 0)
    assert challenger_share(rollout) == 10.0
    states = {g["name"]: g["state"] for g in rollout.gate_status["gates"]}
    assert states == {
        "min_duration": "pass",
        "min_predictions": "pass",
        "min_feedback": "pass",
        "error_rate": "pass",
        "p99_latency_ms": "pass",
        "accuracy_vs_champion": "pending",
    }
    assert not rollout.events.filter(kind=EventKind.STAGE_ADVANCED).exists()


def test_the_deployment_and_dashboard_apis_show_the_undecided_gate_as_pending(
    unlabelled_rollout, analyst_api, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        rollouts_evaluate_all()
    detail = analyst_api.get("/api/v1/deployments/price-direction").json()
    gates = {g["name"]: g for g in detail["rollout"]["gate_status"]["gates"]}
    assert gates["accuracy_vs_champion"]["state"] == "pending"
    summary = analyst_api.get("/api/v1/dashboard/summary").json()
    shown = {g["name"]: g for g in summary["deployments"][0]["rollout"]["gates"]}
    assert shown["accuracy_vs_champion"]["state"] == "pending"
    assert shown["accuracy_vs_champion"]["label"] == "Accuracy vs the champion"
    assert shown["min_feedback"]["label"] == "Labelled challenger rows in this stage"


def test_the_admin_page_shows_the_undecided_gate_as_pending_and_each_threshold_once_with_its_meaning(
    unlabelled_rollout, staff_user, django_capture_on_commit_callbacks
):
    import re

    from django.test import Client

    with django_capture_on_commit_callbacks(execute=True):
        rollouts_evaluate_all()
    client = Client()
    client.force_login(staff_user)
    response = client.get(f"/admin/deployments/rollout/{unlabelled_rollout.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    style, row = re.search(r'<tr data-gate="accuracy_vs_champion" class="([\w-]+)">(.*?)</tr>', html, re.S).groups()
    assert style == "gate-pending"  # the neutral style, not the passing one
    assert "pending" in row and "passing" not in row and "✓" not in row
    assert "Accuracy vs the champion" in row and "not decided yet" in row
    # The two feedback thresholds say what they count, each once.
    assert html.count("Labelled rows per version before accuracy is compared") == 1
    assert html.count("labelled challenger rows in the stage") == len(NO_FEEDBACK_NEEDED_STAGES)


def raw_version_windows(*, deployment, since, until=None, feedback_since=None, requests=True):
    """The windows as they were computed before rollups: every raw row of the window, exact
    percentiles. Kept here only to prove the rollups decide the same."""
    import numpy as np
    from django.db.models import Sum

    from apps.monitoring.models import Feedback, PredictionLog
    from apps.monitoring.selectors import VersionWindow, _feedback_arm

    out = {}
    logs = PredictionLog.objects.filter(deployment=deployment, served_at__gte=since)
    for version_id in set(logs.values_list("model_version_id", flat=True)):
        mine = list(logs.filter(model_version_id=version_id).values_list("status", "latency_ms"))
        ok = [latency for status, latency in mine if status == "ok"]
        window = out[version_id] = VersionWindow(
            version_id=version_id,
            requests=len(mine),
            ok=len(ok),
            client_errors=sum(s == "client_error" for s, _ in mine),
            server_errors=sum(s == "server_error" for s, _ in mine),
        )
        if ok:
            window.p50_ms, window.p95_ms, window.p99_ms = (float(x) for x in np.percentile(ok, [50, 95, 99]))
    feedback = Feedback.objects.filter(deployment=deployment, served_at__gte=feedback_since or since)
    for row in feedback.values("model_version_id", "model_version__task").annotate(
        rows=Sum("n"), correct=Sum("n_correct"), sq=Sum("sq_error_sum"), sq2=Sum("sq_error_sq_sum")
    ):
        window = out.setdefault(row["model_version_id"], VersionWindow(version_id=row["model_version_id"]))
        window.feedback_rows = row["rows"]
        window.arm, window.accuracy, window.rmse = _feedback_arm(
            row["model_version__task"], row["rows"], row["correct"], row["sq"], row["sq2"]
        )
    return out


@pytest.mark.parametrize(
    "scenario, champion_accuracy, challenger_accuracy, challenger_latency_ms, labelled",
    [
        ("worse challenger", 0.9, 0.5, 4.0, 1.0),
        ("better challenger", 0.6, 0.97, 4.0, 1.0),
        ("slow challenger", 0.8, 0.8, 60.0, 1.0),
        ("too little feedback", 0.8, 0.8, 4.0, 0.05),
    ],
)
def test_gate_decisions_from_the_rollups_are_those_of_the_raw_rows_on_the_same_traffic(
    deployment,
    champion,
    challenger,
    staff_user,
    monkeypatch,
    django_capture_on_commit_callbacks,
    scenario,
    champion_accuracy,
    challenger_accuracy,
    challenger_latency_ms,
    labelled,
):
    import time
    from datetime import timedelta

    from django.utils import timezone

    from apps.deployments.services.gates import rollout_gates_check
    from apps.monitoring import selectors
    from tests.monitoring.traffic import label, store_traffic

    with django_capture_on_commit_callbacks(execute=True):
        rollout = rollout_create(
            deployment=deployment,
            challenger=challenger,
            stages=QUICK_STAGES,
            user=staff_user,
            start=True,
            gates={**QUICK_GATES, "max_p99_ms": 30},
        )
    # The rollout began 5 minutes ago and its stage mid-minute 2.5 minutes ago: the windows start
    # inside a minute, so their first part comes from the raw rows and the rest from the rollups.
    now = timezone.now()
    Rollout.objects.filter(pk=rollout.pk).update(
        started_at=now - timedelta(seconds=300), stage_started_at=now - timedelta(seconds=150.5)
    )
    rollout.refresh_from_db()
    start = time.time() - 290
    for version, accuracy, latency, seed in (
        (champion, champion_accuracy, 4.0, 11),
        (challenger, challenger_accuracy, challenger_latency_ms, 12),
    ):
        label(
            deployment,
            store_traffic(
                deployment,
                version,
                start=start,
                seconds=288,
                requests=150,
                seed=seed,
                latency_ms=latency,
                accuracy=accuracy,
            ),
            share=labelled,
        )

    from_rollups = rollout_gates_check(rollout=rollout, now=now)
    monkeypatch.setattr(selectors, "version_windows", raw_version_windows)
    from_raw = rollout_gates_check(rollout=rollout, now=now)

    assert from_rollups.action == from_raw.action, scenario
    assert [(g["name"], g["state"]) for g in from_rollups.gates] == [(g["name"], g["state"]) for g in from_raw.gates]
    by_name = {g["name"]: g for g in from_rollups.gates}
    raw_by_name = {g["name"]: g for g in from_raw.gates}
    for name in ("min_predictions", "min_feedback"):
        assert by_name[name]["value"] == raw_by_name[name]["value"]
    assert by_name["error_rate"]["value"] == raw_by_name["error_rate"]["value"]
    test, raw_test = by_name["accuracy_vs_champion"]["value"], raw_by_name["accuracy_vs_champion"]["value"]
    assert {k: test[k] for k in ("decision", "n_champion", "n_challenger")} == {
        k: raw_test[k] for k in ("decision", "n_champion", "n_challenger")
    }
    assert test["log_likelihood_ratio"] == pytest.approx(raw_test["log_likelihood_ratio"], rel=1e-9)
    expected = {
        "worse challenger": "rollback",
        "better challenger": "advance",
        "slow challenger": "rollback",
        "too little feedback": "hold",
    }[scenario]
    assert from_rollups.action == expected, from_rollups.reason
