from django.db.models import Count, QuerySet
from django.http import Http404

from .models import AliasEvent, ModelVersion, RegisteredModel


def registered_model_list() -> QuerySet[RegisteredModel]:
    return RegisteredModel.objects.annotate(version_count=Count("versions")).order_by("name")


def registered_model_get(*, name: str) -> RegisteredModel:
    model = RegisteredModel.objects.filter(name=name).first()
    if model is None:
        raise Http404(f"No registered model named {name!r}.")
    return model


def model_version_list(*, model: RegisteredModel | None = None) -> QuerySet[ModelVersion]:
    qs = ModelVersion.objects.select_related("registered_model", "dataset_version__dataset", "training_run")
    if model is not None:
        qs = qs.filter(registered_model=model)
    return qs.order_by("registered_model__name", "-version")


def model_version_get(*, model: RegisteredModel, version: int | None = None, alias: str | None = None) -> ModelVersion:
    """A version by number, by alias, or the newest (alias "latest" or nothing given)."""
    qs = model_version_list(model=model)
    if version is not None:
        found = qs.filter(version=version).first()
        what = f"version {version}"
    elif alias and alias != "latest":
        found = qs.filter(alias_set__alias=alias).first()
        what = f"alias {alias!r}"
    else:
        found = qs.first()
        what = "any version"
    if found is None:
        raise Http404(f"{model.name} has no {what}.")
    return found


def model_aliases(*, model: RegisteredModel) -> dict[str, int]:
    return dict(model.aliases.values_list("alias", "version__version"))


def alias_events(*, model: RegisteredModel) -> QuerySet[AliasEvent]:
    return AliasEvent.objects.filter(registered_model=model).select_related("from_version", "to_version", "actor")


def model_versions_compare(*, versions: list[ModelVersion]) -> dict:
    """Rows for a side-by-side table: params, metrics and data of each version (union of keys)."""

    def union(getter):
        keys = []
        for v in versions:
            for key in getter(v):
                if key not in keys:
                    keys.append(key)
        return keys

    params = union(lambda v: v.params or {})
    val = union(lambda v: (v.metrics or {}).get("val", {}))
    test = union(lambda v: (v.metrics or {}).get("test", {}))
    return {
        "versions": versions,
        "params": [(k, [(v.params or {}).get(k) for v in versions]) for k in params],
        "val_metrics": [(k, [(v.metrics or {}).get("val", {}).get(k) for v in versions]) for k in val],
        "test_metrics": [(k, [(v.metrics or {}).get("test", {}).get(k) for v in versions]) for k in test],
        "data": [
            ("dataset", [str(v.dataset_version) for v in versions]),
            ("dataset sha256", [v.dataset_sha256[:12] for v in versions]),
            ("rows", [v.dataset_version.rows for v in versions]),
            ("features", [len(v.signature.get("feature_names", [])) for v in versions]),
            ("history rows", [v.history_rows for v in versions]),
            ("framework", [f"{v.framework} / {v.model_type}" for v in versions]),
            ("training run", [v.training_run_id for v in versions]),
            ("aliases", [", ".join(v.aliases) or "—" for v in versions]),
        ],
    }
