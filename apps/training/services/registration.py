"""A succeeded run becomes a model version (MLflow's register_model): the run is checked and its
fields gathered here; the registry numbers the version, verifies the artifact and stores it."""

from django.core.exceptions import ValidationError

from apps.registry.models import ModelVersion
from apps.registry.services import model_version_create

from ..choices import RunStatus
from ..models import TrainingRun


def model_version_create_from_run(
    *, run, name: str | None = None, user=None, tags: dict | None = None, description: str = ""
) -> ModelVersion:
    """Registers a succeeded run's committed artifact as the next version of model `name`
    (default: the experiment's name). Registering the same run under the same name again returns
    the existing version."""
    run = TrainingRun.objects.select_related("experiment", "dataset_version").get(pk=run.pk)
    if run.status != RunStatus.SUCCEEDED:
        raise ValidationError({"run": f"run {run.pk} is {run.status}; only a succeeded run can be registered."})
    if not run.artifact_uri or not run.artifact_sha256:
        raise ValidationError({"run": f"run {run.pk} has no committed artifact."})
    if tags is not None and not isinstance(tags, dict):
        raise ValidationError({"tags": "must be an object of tag names to values."})
    return model_version_create(
        name=name or run.experiment.name,
        training_run=run,
        artifact_uri=run.artifact_uri,
        artifact_sha256=run.artifact_sha256,
        user=user,
        tags={"experiment": run.experiment.name, **(tags or {})},
        description=description,
        framework=run.framework,
        model_type=run.model_type,
        task=run.experiment.task,
        signature=run.signature,
        metrics={"val": run.val_metrics or {}, "test": run.test_metrics or {}},
        params=run.params,
        dataset_version=run.dataset_version,
        dataset_sha256=run.dataset_sha256,
        library_versions=run.library_versions,
        code_version=run.code_version,
        plugin=run.plugin,
    )
