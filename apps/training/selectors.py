from django.db.models import QuerySet
from django.http import Http404

from .choices import RUN_ACTIVE
from .models import Experiment, RunEpoch, RunLogLine, TrainingRun

LOG_PAGE_MAX = 1000


def experiment_list() -> QuerySet[Experiment]:
    return Experiment.objects.select_related("dataset", "feature_spec").order_by("name")


def experiment_get(*, pk: int) -> Experiment:
    experiment = experiment_list().filter(pk=pk).first()
    if experiment is None:
        raise Http404(f"No experiment {pk}.")
    return experiment


def run_list(
    *, experiment_id: int | None = None, status: str | None = None, active: bool | None = None
) -> QuerySet[TrainingRun]:
    qs = TrainingRun.objects.select_related("experiment", "dataset_version__dataset")
    if experiment_id is not None:
        qs = qs.filter(experiment_id=experiment_id)
    if status:
        qs = qs.filter(status=status)
    if active is True:
        qs = qs.filter(status__in=RUN_ACTIVE)
    elif active is False:
        qs = qs.exclude(status__in=RUN_ACTIVE)
    return qs.order_by("-created_at", "-id")


def run_get(*, pk: int) -> TrainingRun:
    run = run_list().filter(pk=pk).first()
    if run is None:
        raise Http404(f"No training run {pk}.")
    return run


def run_log_lines(*, run_id: int, after: int = 0, limit: int = LOG_PAGE_MAX) -> list[RunLogLine]:
    """Lines with seq > after, oldest first, at most `limit` (the client asks again from the last seq)."""
    limit = max(1, min(int(limit), LOG_PAGE_MAX))
    return list(RunLogLine.objects.filter(run_id=run_id, seq__gt=after).order_by("seq")[:limit])


def run_log_tail(*, run_id: int, lines: int = 200) -> list[RunLogLine]:
    tail = list(RunLogLine.objects.filter(run_id=run_id).order_by("-seq")[:lines])
    tail.reverse()
    return tail


def run_epochs(*, run: TrainingRun) -> list[RunEpoch]:
    """Epoch metrics of the run's latest attempt that reported any."""
    latest = RunEpoch.objects.filter(run=run).order_by("-attempt").values_list("attempt", flat=True).first()
    if latest is None:
        return []
    return list(RunEpoch.objects.filter(run=run, attempt=latest).order_by("epoch"))


def metric_curves(*, run: TrainingRun) -> dict[str, list[tuple[int, float]]]:
    """{metric: [(epoch, value), ...]} of the latest attempt, for charts."""
    curves: dict[str, list[tuple[int, float]]] = {}
    for row in run_epochs(run=run):
        for name, value in (row.metrics or {}).items():
            if isinstance(value, (int, float)):
                curves.setdefault(name, []).append((row.epoch, float(value)))
    return curves
