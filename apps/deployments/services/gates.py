"""Gates that move a running rollout: evaluated by the beat task, acted on through the state machine.

Per stage (challenger's numbers since the stage began):
  - minimum duration, minimum predictions, minimum labelled feedback   → pending until met
  - error rate ≤ max_error_rate, p99 latency ≤ max_p99_ms               → a failure rolls back
  - accuracy / RMSE vs the champion by the mSPRT over all feedback since the rollout began:
      "worse" rolls back at any stage; stepping into 100% (the promotion proper) needs "better"
      when `require_superiority` is on (the default), otherwise only "not worse".
A stage that has not concluded after `max_stage_duration_s` (0 = no limit) rolls back.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.utils import timezone

from ..choices import GateState, RolloutAction, RolloutStatus
from ..models import Rollout
from ..sequential import BETTER, WORSE, ArmStats, msprt
from .traffic import TransitionConflict

logger = logging.getLogger(__name__)

EVALUATOR = "gate-evaluator"
ADVANCE, COMPLETE, ROLLBACK, HOLD = "advance", "complete", "rollback", "hold"


@dataclass
class GateReport:
    action: str
    reason: str
    gates: list[dict] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    stage_index: int = 0

    def as_dict(self) -> dict:
        return {"action": self.action, "reason": self.reason, "stage_index": self.stage_index, "gates": self.gates}


def _gate(name: str, state: str, value, threshold, detail: str) -> dict:
    return {"name": name, "state": state, "value": value, "threshold": threshold, "detail": detail}


def rollout_gates_check(*, rollout: Rollout, now=None) -> GateReport:
    """What the gates say about a running rollout right now (reads only)."""
    from apps.monitoring.selectors import version_windows

    now = now or timezone.now()
    gates_conf, stage = rollout.gates, rollout.current_stage
    stage_index = rollout.stage_index
    windows = version_windows(deployment=rollout.deployment, since=rollout.stage_started_at,
                              feedback_since=rollout.started_at)
    stage_feedback = version_windows(deployment=rollout.deployment, since=rollout.stage_started_at)
    champion = windows.get(rollout.champion_id)
    challenger = windows.get(rollout.challenger_id)
    challenger_requests = challenger.requests if challenger else 0
    challenger_stage_feedback = stage_feedback[rollout.challenger_id].feedback_rows if rollout.challenger_id in stage_feedback else 0
    elapsed = (now - rollout.stage_started_at).total_seconds()
    gates = []

    def minimum(name, value, needed, unit):
        state = GateState.PASS if value >= needed else GateState.PENDING
        gates.append(_gate(name, state, value, needed, f"{value:g} of {needed:g} {unit}"))

    minimum("min_duration", round(elapsed, 1), stage["min_duration_s"], "seconds in this stage")
    minimum("min_predictions", challenger_requests, stage["min_predictions"], "challenger predictions in this stage")
    minimum("min_feedback", challenger_stage_feedback, stage["min_feedback"], "labelled challenger rows in this stage")

    health_floor = int(gates_conf.get("min_requests_for_health", 20))
    error_rate = challenger.error_rate if challenger else None
    if challenger_requests < health_floor:
        gates.append(_gate("error_rate", GateState.PENDING, error_rate, gates_conf["max_error_rate"],
                           f"{challenger_requests} of {health_floor} requests needed to judge"))
        gates.append(_gate("p99_latency_ms", GateState.PENDING, None, gates_conf["max_p99_ms"],
                           f"{challenger_requests} of {health_floor} requests needed to judge"))
    else:
        ok = error_rate <= gates_conf["max_error_rate"]
        gates.append(_gate("error_rate", GateState.PASS if ok else GateState.FAIL, round(error_rate, 4),
                           gates_conf["max_error_rate"], f"{challenger.server_errors} errors in {challenger_requests} requests"))
        p99 = challenger.p99_ms
        ok = p99 is not None and p99 <= gates_conf["max_p99_ms"]
        gates.append(_gate("p99_latency_ms", GateState.PASS if ok else GateState.FAIL,
                           None if p99 is None else round(p99, 3), gates_conf["max_p99_ms"],
                           "no answered request" if p99 is None else f"p99 {p99:.1f} ms"))

    empty = ArmStats(n=0, mean=0.0, variance=0.0)
    test = msprt(
        champion.arm if champion and champion.arm else empty,
        challenger.arm if challenger and challenger.arm else empty,
        alpha=gates_conf["alpha"], tau=gates_conf["tau"], min_n=int(gates_conf["min_feedback_per_arm"]),
    )
    entering_full = stage_index + 1 < len(rollout.stages) and rollout.stages[stage_index + 1]["percent"] >= 100
    needs_better = entering_full and gates_conf.get("require_superiority", True)
    if test.decision == WORSE:
        state = GateState.FAIL
    elif test.decision == BETTER or not needs_better:
        state = GateState.PASS
    else:
        state = GateState.PENDING
    metric = "rmse" if rollout.challenger.task == "regression" else "accuracy"
    gates.append(_gate(f"{metric}_vs_champion", state, test.as_dict(), gates_conf["alpha"],
                       test.reason + (" (promotion to 100% needs the challenger to be better)" if needs_better and state == GateState.PENDING else "")))

    metrics = {
        "stage_since": rollout.stage_started_at.isoformat(),
        "champion": champion.as_dict() if champion else None,
        "challenger": challenger.as_dict() if challenger else None,
        "sequential_test": test.as_dict(),
    }
    failed = [g for g in gates if g["state"] == GateState.FAIL]
    if failed:
        reason = "; ".join(f"{g['name']} failed: {g['detail']}" for g in failed)
        return GateReport(ROLLBACK, reason, gates, metrics, stage_index)
    if all(g["state"] == GateState.PASS for g in gates):
        last = stage_index + 1 >= len(rollout.stages)
        reason = "all gates passed" + ("; completing the rollout" if last else
                                       f"; advancing to {rollout.stages[stage_index + 1]['percent']:g}%")
        return GateReport(COMPLETE if last else ADVANCE, reason, gates, metrics, stage_index)
    limit = float(gates_conf.get("max_stage_duration_s") or 0)
    if limit and elapsed > limit:
        pending = ", ".join(g["name"] for g in gates if g["state"] == GateState.PENDING)
        return GateReport(ROLLBACK, f"stage {stage_index + 1} did not pass within {limit:g}s (pending: {pending})",
                          gates, metrics, stage_index)
    pending = ", ".join(g["name"] for g in gates if g["state"] == GateState.PENDING)
    return GateReport(HOLD, f"waiting on {pending}", gates, metrics, stage_index)


def rollout_evaluate(*, rollout_id: int) -> GateReport | None:
    """Checks a running rollout's gates, stores what they say, and advances, completes or rolls back
    through the state machine when they decide. A staff action that got there first wins: the
    transition carries the stage and the status (running) the gates looked at."""
    rollout = Rollout.objects.select_related("deployment", "challenger", "champion").filter(pk=rollout_id).first()
    if rollout is None or rollout.status != RolloutStatus.RUNNING:
        return None
    report = rollout_gates_check(rollout=rollout)
    now = timezone.now()
    Rollout.objects.filter(pk=rollout.pk, status=RolloutStatus.RUNNING, stage_index=report.stage_index).update(
        gate_status=report.as_dict(), evaluated_at=now
    )
    if rollout.gate_status.get("gates") != report.gates or rollout.gate_status.get("action") != report.action:
        from ..notify import push_changed

        push_changed(rollout.deployment.name)
    if report.action == HOLD:
        return report
    from .rollouts import rollout_transition

    action = RolloutAction.ROLLBACK if report.action == ROLLBACK else RolloutAction.PROMOTE
    try:
        rollout_transition(rollout=rollout, action=action, actor_label=EVALUATOR, reason=report.reason,
                           expected_stage=report.stage_index, expected_status=RolloutStatus.RUNNING,
                           metrics=report.metrics)
    except TransitionConflict as exc:
        logger.info("gate decision on rollout %s not applied: %s", rollout.pk, exc)
    return report


def running_rollout_ids() -> list[int]:
    return list(Rollout.objects.filter(status=RolloutStatus.RUNNING).values_list("pk", flat=True))
