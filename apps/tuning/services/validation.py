"""Checks a study's configuration before it is stored; errors name the field and the parameter."""

from dataclasses import dataclass

from django.core.exceptions import ValidationError

from apps.core.limits import INT32_MAX

from ..choices import Device, Direction, PrunerKind, Strategy
from ..pruners import PrunerOptionError, get_pruner
from ..space import SearchSpace, SearchSpaceError
from ..strategies import StrategyOptionError, get_strategy

MAX_TRIALS_LIMIT = 10_000
MAX_PARALLELISM = 64


@dataclass(frozen=True)
class StudyConfig:
    framework: str
    model_type: str
    search_space: list
    fixed_params: dict
    strategy: str
    strategy_options: dict
    objective_metric: str
    direction: str
    max_trials: int
    max_wall_seconds: int | None
    parallelism: int
    pruner: str
    pruner_options: dict
    device: str
    seed: int


def check_space_against_model(space: SearchSpace, *, framework: str, model_type: str) -> None:
    """Refuses parameters the model type does not have, kinds it does not take, and bounds or
    choices outside the ranges the framework adapter accepts (adapter.model_types)."""
    from apps.frameworks import InvalidParameter, get_adapter

    specs = get_adapter(framework).model_types[model_type]
    for parameter in space.parameters:
        spec = specs.get(parameter.name)
        if spec is None:
            raise SearchSpaceError(
                parameter.name, f"is not a hyperparameter of {framework} {model_type} (known: {', '.join(specs)})"
            )
        if parameter.kind == "categorical":
            values = list(parameter.choices)
        elif spec.kind in ("choice", "bool"):
            raise SearchSpaceError(parameter.name, f"takes {spec.kind} values: search it as a categorical parameter")
        elif parameter.kind == "float" and spec.kind == "int":
            raise SearchSpaceError(parameter.name, "takes whole numbers: use type int")
        else:
            values = [parameter.low, parameter.high]
        for value in values:
            try:
                spec.validate(parameter.name, value)
            except InvalidParameter as exc:
                detail = str(exc).removeprefix(f"{parameter.name}: ")
                raise SearchSpaceError(
                    parameter.name, f"{value!r} is not accepted by {framework} {model_type}: {detail}"
                )


def _representative_point(space: SearchSpace) -> dict:
    return {p.name: p.choices[0] if p.kind == "categorical" else p.low for p in space.parameters}


def _positive_int(value, *, field: str, maximum: int | None = None, errors: dict):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        errors[field] = f"must be a whole number of at least 1, got {value!r}."
    elif maximum is not None and value > maximum:
        errors[field] = f"must be at most {maximum}, got {value}."


def validate_study_config(
    *,
    experiment,
    framework: str,
    model_type: str,
    search_space,
    fixed_params,
    strategy: str,
    strategy_options,
    objective_metric: str,
    direction: str,
    max_trials,
    max_wall_seconds,
    parallelism,
    pruner: str,
    pruner_options,
    device: str,
    seed,
) -> StudyConfig:
    """Returns the normalised configuration or raises ValidationError({field: message})."""
    from apps.frameworks import FRAMEWORKS, get_adapter
    from apps.frameworks.metrics import greater_is_better, metric_names
    from apps.training.services.experiments import validate_training_config

    errors: dict[str, str] = {}
    if framework not in FRAMEWORKS:
        raise ValidationError({"framework": f"must be one of {', '.join(FRAMEWORKS)}, got {framework!r}."})
    adapter = get_adapter(framework)
    if model_type not in adapter.model_types:
        raise ValidationError(
            {
                "model_type": f"{framework} has no model type {model_type!r}; "
                f"choose from {', '.join(adapter.model_types)}."
            }
        )
    if device not in Device.values:
        errors["device"] = f"must be one of {', '.join(Device.values)}, got {device!r}."
    elif device == Device.GPU and not adapter.supports_gpu:
        errors["device"] = f"{framework} models train on the CPU only."

    space = None
    try:
        space = SearchSpace.from_spec(search_space)
        check_space_against_model(space, framework=framework, model_type=model_type)
    except SearchSpaceError as exc:
        errors["search_space"] = str(exc)
        space = None

    fixed_params = {} if fixed_params is None else fixed_params
    if not isinstance(fixed_params, dict):
        errors["fixed_params"] = "must be an object of parameter names to values."
    elif space is not None and "device" not in errors:
        overlap = sorted(set(fixed_params) & set(space.names))
        if overlap:
            errors["fixed_params"] = f"{overlap[0]!r} is also in the search space; keep it in one place."
        else:
            try:
                validate_training_config(
                    framework=framework,
                    model_type=model_type,
                    device=device,
                    params={**fixed_params, **_representative_point(space)},
                )
            except ValidationError as exc:
                errors["fixed_params"] = "; ".join(m for ms in exc.message_dict.values() for m in ms)

    strategy_options = {} if strategy_options is None else strategy_options
    if strategy not in Strategy.values:
        errors["strategy"] = f"must be one of {', '.join(Strategy.values)}, got {strategy!r}."
    elif space is not None:
        try:
            strategy_options = get_strategy(strategy, space=space, options=strategy_options).options
        except StrategyOptionError as exc:
            errors["strategy_options"] = str(exc)

    pruner_options = {} if pruner_options is None else pruner_options
    if pruner not in PrunerKind.values:
        errors["pruner"] = f"must be one of {', '.join(PrunerKind.values)}, got {pruner!r}."
    else:
        try:
            pruner_options = get_pruner(pruner, pruner_options).options
        except PrunerOptionError as exc:
            errors["pruner_options"] = str(exc)

    task = experiment.task
    allowed = [m for m in metric_names(task) if m != "loss"]
    if objective_metric not in allowed:
        errors["objective_metric"] = f"{objective_metric!r} is not a {task} metric; choose from {', '.join(allowed)}."
    elif direction not in Direction.values:
        errors["direction"] = f"must be one of {', '.join(Direction.values)}, got {direction!r}."
    elif (direction == Direction.MAXIMIZE) != greater_is_better(objective_metric):
        good = Direction.MAXIMIZE if greater_is_better(objective_metric) else Direction.MINIMIZE
        errors["direction"] = f"{objective_metric} should be {good}d, not {direction}d."

    _positive_int(max_trials, field="max_trials", maximum=MAX_TRIALS_LIMIT, errors=errors)
    _positive_int(parallelism, field="parallelism", maximum=MAX_PARALLELISM, errors=errors)
    if max_wall_seconds is not None:
        _positive_int(max_wall_seconds, field="max_wall_seconds", errors=errors)
    if isinstance(seed, bool) or not isinstance(seed, int) or not (0 <= seed <= INT32_MAX):
        errors["seed"] = f"must be a whole number between 0 and {INT32_MAX}."
    if errors:
        raise ValidationError(errors)
    return StudyConfig(
        framework=framework,
        model_type=model_type,
        search_space=space.to_spec(),
        fixed_params=fixed_params,
        strategy=strategy,
        strategy_options=strategy_options,
        objective_metric=objective_metric,
        direction=direction,
        max_trials=max_trials,
        max_wall_seconds=max_wall_seconds,
        parallelism=parallelism,
        pruner=pruner,
        pruner_options=pruner_options,
        device=device,
        seed=seed,
    )
