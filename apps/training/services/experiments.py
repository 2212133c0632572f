from django.core.exceptions import ValidationError
from django.db import transaction

from apps.training.choices import Device, Direction, Framework
from apps.training.models import Experiment

EXPERIMENT_FIELDS = (
    "description",
    "feature_spec",
    "target",
    "primary_metric",
    "metric_direction",
    "default_framework",
    "default_model_type",
    "default_params",
    "default_device",
    "seed",
    "retrain_on_new_data",
    "registered_model_name",
)


def validate_training_config(
    *, framework: str, model_type: str, params: dict | None, device: str, field_prefix: str = ""
) -> dict:
    """Checks a framework / model type / params / device combination; returns params with defaults.

    Raises ValidationError naming the field (e.g. {"params": "lr: must be between ..."}).
    """
    from apps.frameworks import InvalidParameter, get_adapter

    if framework not in Framework.values:
        raise ValidationError({f"{field_prefix}framework": f"must be one of {Framework.values}, got {framework!r}."})
    if device not in Device.values:
        raise ValidationError({f"{field_prefix}device": f"must be one of {Device.values}, got {device!r}."})
    if params is not None and not isinstance(params, dict):
        raise ValidationError({f"{field_prefix}params": "must be an object of parameter names to values."})
    adapter = get_adapter(framework)
    if device == Device.GPU and not adapter.supports_gpu:
        raise ValidationError({f"{field_prefix}device": f"{framework} models train on the CPU only."})
    try:
        return adapter.validate_params(model_type, params or {})
    except InvalidParameter as exc:
        field = "model_type" if exc.param == "model_type" else "params"
        raise ValidationError({f"{field_prefix}{field}": str(exc)}) from exc


def experiment_validate(experiment: Experiment) -> None:
    """Checks an (unsaved) experiment against its dataset; fills default_params with defaults."""
    from apps.frameworks.metrics import greater_is_better, metric_names

    errors = {}
    dataset = experiment.dataset
    if experiment.feature_spec_id and experiment.feature_spec.dataset_id != dataset.pk:
        errors["feature_spec"] = f"{experiment.feature_spec} belongs to another dataset than {dataset.name}."
    if experiment.task != dataset.task:
        errors["task"] = (
            f"dataset {dataset.name} is a {dataset.task} dataset; the experiment cannot be {experiment.task}."
        )
    names = [m for m in metric_names(dataset.task) if m != "loss"]
    if experiment.primary_metric not in names:
        errors["primary_metric"] = f"{experiment.primary_metric!r} is not a {dataset.task} metric; choose from {names}."
    elif experiment.metric_direction not in Direction.values:
        errors["metric_direction"] = f"must be one of {Direction.values}."
    elif (experiment.metric_direction == Direction.MAXIMIZE) != greater_is_better(experiment.primary_metric):
        good = "maximize" if greater_is_better(experiment.primary_metric) else "minimize"
        errors["metric_direction"] = (
            f"{experiment.primary_metric} should be {good}d, not {experiment.metric_direction}d."
        )
    if errors:
        raise ValidationError(errors)
    experiment.default_params = validate_training_config(
        framework=experiment.default_framework,
        model_type=experiment.default_model_type,
        params=experiment.default_params,
        device=experiment.default_device,
        field_prefix="default_",
    )


def _default_target(*, dataset, feature_spec) -> str:
    """The label's name as the feature spec defines it (e.g. "direction" of the forward return)."""
    from apps.datasets.preprocessing import DatasetInfo, SpecError, normalize_spec, target_name

    try:
        return target_name(normalize_spec(feature_spec.spec if feature_spec else {}), DatasetInfo.of(dataset))
    except SpecError as exc:
        raise ValidationError({"feature_spec": str(exc)}) from exc


@transaction.atomic
def experiment_create(
    *,
    name: str,
    dataset,
    user=None,
    feature_spec=None,
    target: str = "",
    task: str = "",
    primary_metric: str = "",
    metric_direction: str = "",
    default_framework: str = Framework.SKLEARN,
    default_model_type: str = "",
    default_params: dict | None = None,
    default_device: str = Device.CPU,
    seed: int = 0,
    retrain_on_new_data: bool = False,
    registered_model_name: str = "",
    description: str = "",
) -> Experiment:
    """Creates an experiment; blanks default from the dataset (task, target) and the metrics module."""
    from apps.frameworks import get_adapter
    from apps.frameworks.metrics import DEFAULT_METRIC, METRICS, greater_is_better

    task = task or dataset.task
    target = target or _default_target(dataset=dataset, feature_spec=feature_spec)
    primary_metric = primary_metric or DEFAULT_METRIC.get(task, "")
    # An unknown metric has no direction to default to; experiment_validate names it below.
    if not metric_direction and primary_metric in METRICS:
        metric_direction = Direction.MAXIMIZE if greater_is_better(primary_metric) else Direction.MINIMIZE
    if default_framework in Framework.values and not default_model_type:
        default_model_type = next(iter(get_adapter(default_framework).model_types))
    experiment = Experiment(
        name=name,
        dataset=dataset,
        feature_spec=feature_spec,
        target=target,
        task=task,
        primary_metric=primary_metric,
        metric_direction=metric_direction,
        default_framework=default_framework,
        default_model_type=default_model_type,
        default_params=default_params or {},
        default_device=default_device,
        seed=seed,
        retrain_on_new_data=retrain_on_new_data,
        registered_model_name=registered_model_name,
        description=description,
        created_by=user,
    )
    experiment_validate(experiment)
    experiment.full_clean()
    experiment.save()
    return experiment


@transaction.atomic
def experiment_update(*, experiment: Experiment, data: dict) -> Experiment:
    experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
    for field in EXPERIMENT_FIELDS:
        if field in data:
            setattr(experiment, field, data[field])
    experiment_validate(experiment)
    experiment.full_clean()
    experiment.save()
    return experiment


def experiment_training_config(
    *,
    experiment: Experiment,
    framework: str | None = None,
    model_type: str | None = None,
    params: dict | None = None,
    device: str | None = None,
) -> dict:
    """Fills what the caller left blank from the experiment's defaults: the default params only apply
    to the default framework and model type; another model type starts from its own defaults."""
    from apps.frameworks import get_adapter

    framework = framework or experiment.default_framework
    same_framework = framework == experiment.default_framework
    if not model_type:
        model_type = experiment.default_model_type if same_framework else next(iter(get_adapter(framework).model_types))
    if params is None:
        params = experiment.default_params if same_framework and model_type == experiment.default_model_type else {}
    return {
        "framework": framework,
        "model_type": model_type,
        "params": params,
        "device": device or experiment.default_device,
    }
