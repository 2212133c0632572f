"""Scoring a candidate beside the champion, walk-forward and leak-free by time.

The window is every labelled row of the newest dataset version whose time comes after the last row
either model was fitted on (its training and validation rows: validation drives early stopping), so
neither model has seen a row it is judged on. Each row is predicted the way serving predicts it:
through the version's own fitted preprocessor and `LoadedModel.predict_raw`, given only the rows up
to that time (the history a live client would send), so a feature that would peek ahead cannot
flatter either model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

# Bounds the cost of the walk: models with history are asked once per time step.
MAX_TIMES = 250


class EvaluationError(Exception):
    """The evaluation cannot give a fair verdict; the message says why (stored on the evaluation)."""


@dataclass
class Scores:
    metric: str
    candidate_value: float
    champion_value: float
    candidate_metrics: dict
    champion_metrics: dict
    window: dict
    log: list[str] = field(default_factory=list)


def scored_metrics(task: str) -> list[str]:
    """The metrics an evaluation reports for `task`: those computed from predicted labels alone
    (found by asking compute_metrics itself, so the list cannot drift from it)."""
    from apps.frameworks.metrics import compute_metrics

    sample = [0, 1] if task == "classification" else [0.0, 1.0]
    return sorted(compute_metrics(task, sample, sample, n_classes=2 if task == "classification" else None))


def _labels(df: pd.DataFrame, dataset, spec: dict) -> tuple[pd.DataFrame, list | None]:
    """(one row per input row in input order: time, entity, y; the classes). y is NaN where the label
    is not known yet (a horizon target at the end of the data)."""
    # The same label code training uses, so the window is judged on the labels the models learnt.
    from apps.datasets.preprocessing.frame import build_frame, column_kind
    from apps.datasets.preprocessing.prepare import _targets
    from apps.datasets.preprocessing.spec import DatasetInfo, normalize_spec

    info = DatasetInfo.of(dataset)
    target = info.target_column
    frame = build_frame(
        df,
        columns=[target],
        time_column=info.time_column,
        entity_column=info.entity_column,
        kinds={target: column_kind(df[target])},
    )
    y, classes, _ = _targets(frame, normalize_spec(spec), info)
    order = np.arange(frame.n) if frame.order is None else frame.order
    group = frame.group_of_rows()
    entities = (
        np.array([str(e) for e in frame.entities], dtype=object)[group] if info.entity_column else np.full(frame.n, "")
    )
    out = pd.DataFrame({"time": frame.time, "entity": entities, "y": y}, index=order).sort_index()
    return out, classes


def _fit_end(version) -> np.datetime64:
    """The last time `version`'s model was fitted on (training and validation rows)."""
    from apps.datasets.preprocessing import prepare_training_data
    from apps.datasets.selectors import dataset_version_dataframe

    run = version.training_run
    df = dataset_version_dataframe(version=version.dataset_version)
    data = prepare_training_data(df=df, dataset=version.dataset_version.dataset, spec=run.feature_spec, seed=run.seed)
    seen = [t for t in (data.time_train, data.time_val) if t is not None and len(t)]
    if not seen:
        raise EvaluationError(f"{version} was not trained on time-ordered data")
    return max(np.max(t) for t in seen)


def _predict_window(loaded, df: pd.DataFrame, labels: pd.DataFrame, rows: np.ndarray) -> dict[int, object]:
    """Predictions of `loaded` for input positions `rows`, each from the rows up to its time only."""
    needs_history = loaded.preprocessor.needs_history or loaded.window > 1
    if not needs_history:
        predictions, _ = loaded.predict_raw(df.iloc[rows])
        return dict(zip(rows.tolist(), predictions))
    need = loaded.history_rows + loaded.window - 1
    out: dict[int, object] = {}
    times = labels["time"].to_numpy()
    for when in np.unique(times[rows]):
        at_time = rows[times[rows] == when]
        past = labels[labels["time"] <= when]
        wanted = set(labels["entity"].to_numpy()[at_time])
        past = past[past["entity"].isin(wanted)]
        sizes = past.groupby("entity").size()
        enough = set(sizes[sizes >= need].index)
        history = past[past["entity"].isin(enough)].groupby("entity", sort=False).tail(need)
        if history.empty:
            continue
        predictions, entity_labels = loaded.predict_raw(df.iloc[history.index.to_numpy()])
        by_entity = {str(label): p for label, p in zip(entity_labels, predictions)}
        single = len(enough) == 1 and not loaded.preprocessor.entity_column
        for position in at_time:
            entity = labels.at[position, "entity"]
            if entity in enough:
                value = predictions[0] if single else by_entity.get(entity)
                if value is not None:
                    out[int(position)] = value
    return out


def score_candidate(*, candidate, champion, dataset_version, metric: str, min_rows: int = 1) -> Scores:
    """Scores both versions on the same window of `dataset_version`; raises EvaluationError saying
    why when no fair comparison is possible (no time column, too few rows, different targets)."""
    from apps.datasets.selectors import dataset_version_dataframe
    from apps.registry.loading import load_model_version
    from apps.frameworks.metrics import compute_metrics

    dataset = dataset_version.dataset
    log: list[str] = []
    if not dataset.time_column:
        raise EvaluationError(
            f"dataset {dataset.name} has no time column, so no window can be after both models' "
            "training data; evaluate by hand"
        )
    if candidate.signature.get("target") != champion.signature.get("target"):
        raise EvaluationError(
            f"{candidate} and {champion} predict different targets "
            f"({candidate.signature.get('target')!r} vs {champion.signature.get('target')!r})"
        )
    after = max(_fit_end(candidate), _fit_end(champion))
    log.append(f"both models were fitted on rows up to {pd.Timestamp(after).isoformat()}")
    df = dataset_version_dataframe(version=dataset_version)
    labels, classes = _labels(df, dataset, candidate.training_run.feature_spec)
    labelled = labels[np.isfinite(labels["y"].to_numpy()) & (labels["time"].to_numpy() > after)]
    times = np.unique(labelled["time"].to_numpy())[-MAX_TIMES:]
    rows = labelled.index[labelled["time"].isin(times)].to_numpy()
    log.append(f"window: {len(rows)} labelled rows at {len(times)} times of {dataset_version}")
    if len(rows) == 0:
        raise EvaluationError(
            f"{dataset_version} has no labelled row after {pd.Timestamp(after).isoformat()}, "
            "the end of both models' training data; wait for newer data"
        )

    loaded = {role: load_model_version(v) for role, v in (("candidate", candidate), ("champion", champion))}
    predicted = {role: _predict_window(model, df, labels, rows) for role, model in loaded.items()}
    common = sorted(set(predicted["candidate"]) & set(predicted["champion"]))
    log.append(f"{len(common)} rows predicted by both versions")
    if not common:
        raise EvaluationError("neither version could predict a row of the window (too little history)")
    if len(common) < min_rows:
        raise EvaluationError(
            f"only {len(common)} labelled rows after both models' training data, fewer than the "
            f"policy's min_evaluation_rows ({min_rows}); wait for newer data"
        )

    task = candidate.task
    truth = labels.loc[common, "y"].to_numpy()
    if task == "classification":
        model_classes = [str(c) for c in (candidate.signature.get("classes") or [])]
        index = {c: i for i, c in enumerate(model_classes)}
        true_labels = [str(classes[int(v)]) for v in truth]
        unknown = sorted({c for c in true_labels if c not in index})
        if unknown:
            raise EvaluationError(f"the window holds classes {unknown} that {candidate} does not know")
        y_true = np.array([index[c] for c in true_labels])
        ys = {role: np.array([index.get(str(predicted[role][p]), -1) for p in common]) for role in predicted}
        n_classes = len(model_classes)
    else:
        y_true = truth.astype(np.float64)
        ys = {role: np.array([float(predicted[role][p]) for p in common]) for role in predicted}
        n_classes = None
    metrics = {role: compute_metrics(task, y_true, y, n_classes=n_classes) for role, y in ys.items()}
    if metric not in metrics["candidate"]:
        raise EvaluationError(
            f"metric {metric!r} is not computed for {task}; choose one of {sorted(metrics['candidate'])}"
        )
    window = {
        "after": pd.Timestamp(after).isoformat(),
        "start": pd.Timestamp(times[0]).isoformat(),
        "end": pd.Timestamp(times[-1]).isoformat(),
        "rows": len(common),
        "times": len(times),
    }
    return Scores(
        metric=metric,
        candidate_value=float(metrics["candidate"][metric]),
        champion_value=float(metrics["champion"][metric]),
        candidate_metrics=metrics["candidate"],
        champion_metrics=metrics["champion"],
        window=window,
        log=log,
    )
