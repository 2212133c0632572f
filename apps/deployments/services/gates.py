"""Gates that move a running rollout: evaluated by the beat task, acted on through the state machine.

Every gate is in one of three states (`GateState`): **pending** (not decided yet: too little
time, traffic or feedback to judge), **pass** (shown as passing) or **fail** (failing). Only a
stage whose gates all pass advances; any failure rolls back; anything pending holds the stage.

Per stage (challenger's numbers since the stage began):
  - minimum duration, minimum predictions, minimum labelled challenger rows → pending until met
  - error rate ≤ max_error_rate, p99 latency ≤ max_p99_ms (judged once the challenger has answered
    `min_requests_for_health` requests in the stage; pending before)            → a failure rolls back
  - accuracy / RMSE vs the champion by the mSPRT over all feedback since the rollout began:
      pending until both versions have `min_feedback_per_arm` labelled rows (no comparison yet, so
      no verdict); then "worse" rolls back at any stage; stepping into 100% (the promotion proper)
      needs "better" when `require_superiority` is on (the default), otherwise only "not worse".
A stage that has not concluded after `max_stage_duration_s` (0 = no limit) rolls back.

Two feedback thresholds stay because they answer different questions: the stage's `min_feedback`
is how much fresh labelled evidence on the challenger each stage must collect before it may move
on (policy); `min_feedback_per_arm` is how many labelled rows each version needs before the
sequential test's variances can be trusted at all (statistics; it counts the champion too and
everything since the rollout began). Each gate carries a plain `label` saying what it counts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.utils import timezone

from apps.monitoring.arm_stats import ArmStats

from ..choices import GateState, RolloutAction, RolloutStatus
from ..models import Rollout
from ..sequential import BETTER, WORSE, msprt
from .traffic import TransitionConflict

logger = logging.getLogger(__name__)

EVALUATOR = "gate-evaluator"
ADVANCE, COMPLETE, ROLLBACK, HOLD = "advance", "complete", "rollback", "hold"
DEFAULT_MIN_REQUESTS_FOR_HEALTH = 20

# What each gate counts, in the words every screen shows (admin, dashboard, API).
GATE_LABELS = {
    "min_duration": "Time in this stage",
    "min_predictions": "Challenger predictions in this stage",
    "min_feedback": "Labelled challenger rows in this stage",
    "error_rate": "Challenger error rate",
    "p99_latency_ms": "Challenger p99 latency",
    "accuracy_vs_champion": "Accuracy vs the champion",
    "rmse_vs_champion": "RMSE vs the champion",
}
# How a state reads on a screen: a pending gate has not decided, so it gets no check mark.
GATE_STATE_WORDS = {GateState.PASS: "passing", GateState.FAIL: "failing", GateState.PENDING: "pending"}
# The rollout's gate settings (Rollout.gates), each with what it means, in the order shown.
GATE_SETTING_LABELS = {
    "max_error_rate": "Highest challenger error rate (share of requests answered with a server error)",
    "max_p99_ms": "Highest challenger p99 latency, ms",
    "min_requests_for_health": "Challenger requests in a stage before error rate and latency are judged",
    "min_feedback_per_arm": "Labelled rows per version before accuracy is compared (counted since the rollout began)",
    "alpha": "Accuracy test: accepted chance of a wrong verdict (alpha)",
    "tau": "Accuracy test: expected size of a difference (tau, in outcome standard deviations)",
    "require_superiority": "Entering 100% needs the challenger to be better, not only not worse",
    "max_stage_duration_s": "Roll back a stage still undecided after this many seconds (0 = never)",
}
# The per-stage minimums (Rollout.stages[i]), each with what it counts.
STAGE_MINIMUM_LABELS = {
    "min_duration_s": "seconds in the stage",
    "min_predictions": "challenger predictions in the stage",
    "min_feedback": "labelled challenger rows in the stage",
}


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
    return {
        "name": name,
        "label": GATE_LABELS.get(name, name),
        "state": state,
        "value": value,
        "threshold": threshold,
        "detail": detail,
    }


def gate_label(gate: dict) -> str:
    """A stored gate's label (gates stored before labels existed have only a name)."""
    return gate.get("label") or GATE_LABELS.get(gate.get("name", ""), gate.get("name", ""))


def gate_setting_rows(gates: dict) -> list[tuple[str, str, object]]:
    """(key, meaning, value) for each of a rollout's gate settings, defaults filled in, known ones first."""
    values = {"min_requests_for_health": DEFAULT_MIN_REQUESTS_FOR_HEALTH, **(gates or {})}
    known = [(key, label, values[key]) for key, label in GATE_SETTING_LABELS.items() if key in values]
    return known + [(key, key, value) for key, value in sorted(values.items()) if key not in GATE_SETTING_LABELS]


def rollout_gates_check(*, rollout: Rollout, now=None) -> GateReport:
    """What the gates say about a running rollout right now (reads only)."""
    from apps.monitoring import selectors

    now = now or timezone.now()
    gates_conf, stage = rollout.gates, rollout.current_stage
    stage_index = rollout.stage_index
    # Both read the per-minute rollups (raw rows only for the part of a minute the stage began in),
    # so an evaluation costs the same at any traffic.
    windows = selectors.version_windows(
        deployment=rollout.deployment, since=rollout.stage_started_at, feedback_since=rollout.started_at
    )
    stage_feedback = selectors.version_windows(
        deployment=rollout.deployment, since=rollout.stage_started_at, requests=False
    )
    champion = windows.get(rollout.champion_id)
    challenger = windows.get(rollout.challenger_id)
    challenger_requests = challenger.requests if challenger else 0
    challenger_stage_feedback = (
        stage_feedback[rollout.challenger_id].feedback_rows if rollout.challenger_id in stage_feedback else 0
    )
    elapsed = (now - rollout.stage_started_at).total_seconds()
    gates = []

    def minimum(name, value, needed, unit=""):
        state = GateState.PASS if value >= needed else GateState.PENDING
        gates.append(_gate(name, state, value, needed, f"{value:g} of {needed:g}{unit}"))

    # The label says what is counted; the detail is only the count against its minimum.
    minimum("min_duration", round(elapsed, 1), stage["min_duration_s"], " s")
    minimum("min_predictions", challenger_requests, stage["min_predictions"])
    minimum("min_feedback", challenger_stage_feedback, stage["min_feedback"])

    health_floor = int(gates_conf.get("min_requests_for_health", DEFAULT_MIN_REQUESTS_FOR_HEALTH))
    error_rate = challenger.error_rate if challenger else None
    if challenger_requests < health_floor:
        not_yet = f"not judged yet: {challenger_requests} of {health_floor} challenger requests needed"
        gates.append(_gate("error_rate", GateState.PENDING, error_rate, gates_conf["max_error_rate"], not_yet))
        gates.append(_gate("p99_latency_ms", GateState.PENDING, None, gates_conf["max_p99_ms"], not_yet))
    else:
        ok = error_rate <= gates_conf["max_error_rate"]
        gates.append(
            _gate(
                "error_rate",
                GateState.PASS if ok else GateState.FAIL,
                round(error_rate, 4),
                gates_conf["max_error_rate"],
                f"{challenger.server_errors} errors in {challenger_requests} requests",
            )
        )
        p99 = challenger.p99_ms
        ok = p99 is not None and p99 <= gates_conf["max_p99_ms"]
        gates.append(
            _gate(
                "p99_latency_ms",
                GateState.PASS if ok else GateState.FAIL,
                None if p99 is None else round(p99, 3),
                gates_conf["max_p99_ms"],
                "no answered request" if p99 is None else f"p99 {p99:.1f} ms",
            )
        )

    empty = ArmStats(n=0, mean=0.0, variance=0.0)
    test = msprt(
        champion.arm if champion and champion.arm else empty,
        challenger.arm if challenger and challenger.arm else empty,
        alpha=gates_conf["alpha"],
        tau=gates_conf["tau"],
        min_n=int(gates_conf["min_feedback_per_arm"]),
    )
    entering_full = stage_index + 1 < len(rollout.stages) and rollout.stages[stage_index + 1]["percent"] >= 100
    needs_better = entering_full and gates_conf.get("require_superiority", True)
    if test.waiting_for_feedback:
        # No comparison has been made, so there is no verdict either way: never "pass" here.
        state = GateState.PENDING
        detail = (
            f"not decided yet: needs {test.min_n} labelled rows per version since the rollout began "
            f"(champion {test.n_champion}, challenger {test.n_challenger})"
        )
    elif test.decision == WORSE:
        state, detail = GateState.FAIL, test.reason
    elif test.decision == BETTER:
        state, detail = GateState.PASS, test.reason
    elif needs_better:
        state, detail = GateState.PENDING, f"{test.reason}; promotion to 100% needs the challenger to be better"
    else:
        state, detail = GateState.PASS, f"not worse so far ({test.reason}); this stage needs no more than that"
    metric = "rmse" if rollout.challenger.task == "regression" else "accuracy"
    gates.append(_gate(f"{metric}_vs_champion", state, test.as_dict(), gates_conf["alpha"], detail))

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
        reason = "all gates passed" + (
            "; completing the rollout" if last else f"; advancing to {rollout.stages[stage_index + 1]['percent']:g}%"
        )
        return GateReport(COMPLETE if last else ADVANCE, reason, gates, metrics, stage_index)
    limit = float(gates_conf.get("max_stage_duration_s") or 0)
    if limit and elapsed > limit:
        pending = ", ".join(g["name"] for g in gates if g["state"] == GateState.PENDING)
        return GateReport(
            ROLLBACK,
            f"stage {stage_index + 1} did not pass within {limit:g}s (pending: {pending})",
            gates,
            metrics,
            stage_index,
        )
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
        rollout_transition(
            rollout=rollout,
            action=action,
            actor_label=EVALUATOR,
            reason=report.reason,
            expected_stage=report.stage_index,
            expected_status=RolloutStatus.RUNNING,
            metrics=report.metrics,
        )
    except TransitionConflict as exc:
        logger.info("gate decision on rollout %s not applied: %s", rollout.pk, exc)
    return report


def running_rollout_ids() -> list[int]:
    return list(Rollout.objects.filter(status=RolloutStatus.RUNNING).values_list("pk", flat=True))
