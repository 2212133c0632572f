"""Reads for delivery: policies, evaluations and the delivery timeline of a deployment."""

from __future__ import annotations

from django.http import Http404

from .models import CandidateEvaluation, DeliveryPolicy


def delivery_policy_list():
    return DeliveryPolicy.objects.select_related("deployment", "registered_model", "updated_by")


def delivery_policy_get(*, deployment_name: str) -> DeliveryPolicy | None:
    return delivery_policy_list().filter(deployment__name=deployment_name).first()


def candidate_evaluation_list(*, deployment_name: str | None = None):
    rows = CandidateEvaluation.objects.select_related(
        "policy__deployment", "candidate__registered_model", "champion", "dataset_version", "rollout"
    )
    if deployment_name:
        rows = rows.filter(policy__deployment__name=deployment_name)
    return rows


def _user(user) -> str:
    return user.get_username() if user is not None else ""


def _step(kind: str, at, actor: str, what: str, reason: str = "", **ref) -> dict:
    return {
        "step": kind,
        "at": at.isoformat() if at else None,
        "actor": actor or "system",
        "what": what,
        "reason": reason,
        **ref,
    }


def _chain(version, evaluations: list, rollouts: list, alias_events: list) -> dict:
    """dataset version → run → version → evaluations → rollouts (each event) → alias moves."""
    from apps.training.models import RunEvent

    run = version.training_run
    dataset_version = version.dataset_version
    steps = [
        _step(
            "dataset_version",
            dataset_version.created_at,
            _user(dataset_version.created_by),
            f"{dataset_version} arrived ({dataset_version.rows} rows)",
            f"source: {dataset_version.source}",
            dataset_version_id=dataset_version.pk,
        ),
        _step(
            "training_run",
            run.created_at,
            _user(run.created_by) or run.get_origin_display().lower(),
            f"run {run.pk} queued ({run.framework}/{run.model_type})",
            f"origin: {run.get_origin_display()}",
            run_id=run.pk,
        ),
    ]
    from apps.alerts.selectors import alert_events_for_run

    for alert in alert_events_for_run(run_id=run.pk):  # an alert that started this retrain (issue 13)
        steps.append(
            _step(
                "alert",
                alert.created_at,
                "alert rules",
                f"alert {alert.rule.name} fired: retrain started",
                f"alert {alert.rule.name}: {alert.message}",
                alert_event_id=alert.pk,
            )
        )
    finished = RunEvent.objects.filter(run=run, to_status=run.status).order_by("-created_at").first()
    if run.finished_at:
        steps.append(
            _step(
                "training_run",
                run.finished_at,
                _user(finished.actor) if finished else "",
                f"run {run.pk} {run.status}",
                finished.reason if finished else "",
                run_id=run.pk,
            )
        )
    steps.append(
        _step(
            "model_version",
            version.created_at,
            _user(version.created_by),
            f"{version} registered",
            f"from run {run.pk}",
            model_version_id=version.pk,
        )
    )
    for evaluation in evaluations:
        steps.append(
            _step(
                "evaluation",
                evaluation.finished_at or evaluation.started_at or evaluation.created_at,
                "delivery policy",
                f"evaluation {evaluation.pk} {evaluation.status}"
                + (f" → {evaluation.get_action_display().lower()}" if evaluation.action else ""),
                evaluation.reason or evaluation.trigger,
                evaluation_id=evaluation.pk,
                candidate_value=evaluation.candidate_value,
                champion_value=evaluation.champion_value,
                metric=evaluation.metric,
            )
        )
    rollout_ids = {r.pk for r in rollouts}
    for rollout in rollouts:
        for event in rollout.events.all():
            stage = f" (stage {event.stage_index + 1})" if event.stage_index is not None else ""
            steps.append(
                _step(
                    "rollout",
                    event.created_at,
                    event.actor_label,
                    f"rollout {rollout.pk}: {event.get_kind_display().lower()}{stage}",
                    event.reason,
                    rollout_id=rollout.pk,
                    to_status=event.to_status,
                )
            )
    for event in alias_events:
        if event.rollout_id in rollout_ids:
            src = f"v{event.from_version.version}" if event.from_version_id else "-"
            dst = f"v{event.to_version.version}" if event.to_version_id else "-"
            steps.append(
                _step(
                    "alias",
                    event.created_at,
                    _user(event.actor),
                    f"@{event.alias}: {src} → {dst}",
                    event.reason,
                    rollout_id=event.rollout_id,
                )
            )
    steps.sort(key=lambda s: s["at"] or "")
    outcome = rollouts[0].status if rollouts else (evaluations[0].status if evaluations else "registered")
    return {
        "model_version_id": version.pk,
        "version": version.version,
        "candidate": str(version),
        "outcome": outcome,
        "steps": steps,
    }


def delivery_timeline(*, deployment, limit: int = 20) -> list[dict]:
    """One chain per candidate version that reached this deployment (through its policy's evaluations
    or any rollout), newest first, each step with who or what acted and why."""
    from apps.deployments.models import Rollout
    from apps.registry.models import AliasEvent, ModelVersion

    evaluations = list(CandidateEvaluation.objects.filter(policy__deployment=deployment).order_by("-created_at", "-pk"))
    rollouts = list(
        Rollout.objects.filter(deployment=deployment).prefetch_related("events").order_by("-created_at", "-pk")
    )
    version_ids = {e.candidate_id for e in evaluations} | {r.challenger_id for r in rollouts}
    versions = (
        ModelVersion.objects.filter(pk__in=version_ids)
        .select_related(
            "registered_model",
            "dataset_version",
            "dataset_version__created_by",
            "created_by",
            "training_run",
            "training_run__created_by",
        )
        .order_by("-version")[:limit]
    )
    alias_events = list(
        AliasEvent.objects.filter(rollout_id__in=[r.pk for r in rollouts]).select_related(
            "from_version", "to_version", "actor"
        )
    )
    return [
        _chain(
            version,
            [e for e in evaluations if e.candidate_id == version.pk],
            [r for r in rollouts if r.challenger_id == version.pk],
            alias_events,
        )
        for version in versions
    ]


def deployment_for_timeline(*, name: str):
    from apps.deployments.models import Deployment

    deployment = Deployment.objects.filter(name=name).first()
    if deployment is None:
        raise Http404(f"No deployment named {name!r}.")
    return deployment
