"""Synthetic traffic through the real writer and feedback services, for the monitoring tests."""

import uuid

import numpy as np

from apps.monitoring.services.feedback import feedback_record
from apps.monitoring.services.logbuffer import log_entry, logs_store

STATUSES = ["ok"] * 18 + ["client_error", "server_error"]


def store_traffic(
    deployment,
    version,
    *,
    start: float,
    seconds: float,
    requests: int,
    seed: int,
    latency_ms: float = 5.0,
    accuracy: float = 0.8,
    f3_shift: float = 0.0,
) -> list[tuple[dict, list]]:
    """`requests` answers of `version` served over [start, start + seconds), stored through the
    writer's store function in batches (one of them twice, as after a lost commit acknowledgement);
    returns (line, ground truth) for each."""
    rng = np.random.default_rng(seed)
    lines = []
    for t in np.sort(start + rng.random(requests) * seconds):
        status = STATUSES[int(rng.integers(len(STATUSES)))]
        label = int(rng.integers(2))
        p = float(rng.uniform(0.5, 1.0))
        entry = log_entry(
            request_id=str(uuid.uuid4()),
            deployment_id=deployment.pk,
            version_id=version.pk,
            shadow=False,
            status=status,
            latency_ms=float(latency_ms * rng.lognormal(0, 0.6)),
            n_rows=1,
            inputs_hash="h",
            output=[label] if status == "ok" else [],
            served_at=float(t),
            features={"f1": [float(v) for v in rng.normal(size=2)], "f3": [float(rng.normal() + f3_shift)]},
            probabilities=[[1 - p, p] if label else [p, 1 - p]] if status == "ok" else None,
        )
        truth = [label if rng.random() < accuracy else 1 - label]
        lines.append((entry, truth))
    entries = [entry for entry, _ in lines]
    for i in range(0, len(entries), 37):
        assert logs_store(entries[i : i + 37]) == []
    logs_store(entries[:37])  # retried after a commit whose acknowledgement was lost: adds nothing
    return lines


def label(deployment, lines, share: float = 1.0) -> None:
    ok = [(entry, truth) for entry, truth in lines if entry["st"] == "ok"]
    chosen = ok[: int(len(ok) * share)]
    for i in range(0, len(chosen), 200):
        feedback_record(
            deployment=deployment,
            items=[{"request_id": entry["r"], "ground_truth": truth} for entry, truth in chosen[i : i + 200]],
        )
