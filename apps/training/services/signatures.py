"""What a trained model promises its clients: its signature and an input example.

The signature (raw input columns, features, history a prediction needs, output type) is stored with
the artifact and the registered version. The input example holds the newest raw rows of a few
entities and what the freshly trained, in-memory model predicts for them, so anyone can check that
the saved-and-loaded model answers exactly as the trained one did.
"""

import json
import logging

from apps.training.models import Experiment, TrainingRun
from apps.training.services.runs import json_safe

logger = logging.getLogger(__name__)


def build_signature(*, data, preprocessor, trained, experiment: Experiment, dataset_version) -> dict:
    """The input/output contract of the model, as stored with the version and shown to clients."""
    raw_columns = list(getattr(preprocessor, "raw_columns", []) or [])
    schema = {c["name"]: c.get("dtype") for c in (dataset_version.schema or []) if isinstance(c, dict)}
    window = int(getattr(trained, "window", 1) or 1)
    preprocessor_rows = int(getattr(preprocessor, "history_rows", 1) or 1)
    classes = list(data.classes) if getattr(data, "classes", None) is not None else None
    return json_safe(
        {
            "inputs": [{"name": c, "dtype": schema.get(c, "unknown")} for c in raw_columns],
            "raw_columns": raw_columns,
            "feature_names": list(data.feature_names),
            "feature_dtypes": {name: "float32" for name in data.feature_names},
            "entity_column": getattr(preprocessor, "entity_column", None) or "",
            "time_column": getattr(preprocessor, "time_column", None) or "",
            "preprocessor_history_rows": preprocessor_rows,
            "window": window,
            "history_rows": preprocessor_rows + window - 1,
            "task": experiment.task,
            "target": experiment.target,
            "classes": classes,
            "output": {
                "name": "prediction",
                "dtype": "string"
                if classes and any(isinstance(c, str) for c in classes)
                else ("int64" if experiment.task == "classification" else "float64"),
            },
        }
    )


EXAMPLE_ENTITIES = 3


def input_example(*, df, preprocessor, trained, signature: dict, run: TrainingRun) -> dict | None:
    """The newest raw rows of a few entities (exactly the history one prediction needs) and what the
    freshly trained, in-memory model predicts for them. Stored with the artifact, it lets anyone
    check that the saved-and-loaded model answers exactly as the trained one did."""
    from apps.registry.loading import LoadedModel

    need = int(signature.get("history_rows", 1))
    entity, time_column = preprocessor.entity_column, preprocessor.time_column
    rows = df
    if time_column:
        rows = rows.sort_values(([entity] if entity else []) + [time_column], kind="stable")
    if entity:
        keep = list(dict.fromkeys(rows[entity].tolist()))[:EXAMPLE_ENTITIES]
        rows = rows[rows[entity].isin(keep)].groupby(entity, sort=False).tail(need)
    else:
        rows = rows.tail(max(need, 5))
    rows = rows[list(preprocessor.raw_columns)].reset_index(drop=True)
    model = LoadedModel(
        version_id=0,
        name="",
        version=0,
        framework=run.framework,
        task=run.experiment.task,
        signature=signature,
        preprocessor=preprocessor,
        trained=trained,
        classes=signature.get("classes"),
    )
    try:
        predictions, labels = model.predict_raw(rows)
        probabilities = model.predict_proba_raw(rows)[0].tolist() if model.task == "classification" else None
    except ValueError as exc:  # the preprocessor's InvalidInput / InsufficientHistory
        logger.warning("run %s: no input example: %s", run.pk, exc)
        return None
    example = {
        "rows": json.loads(rows.to_json(orient="records", date_format="iso")),
        "predictions": predictions,
        "labels": [str(label) for label in labels],
    }
    if probabilities is not None:
        example["probabilities"] = probabilities  # one row per prediction, in signature["classes"] order
    return json_safe(example)
