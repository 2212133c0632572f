"""Writes for datasets, their versions and feature specs. Each service validates before it writes and
raises django.core.exceptions.ValidationError naming the field (and, for files, the row and column)."""

import json
import logging

from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import storages
from django.db import IntegrityError, transaction
from django.db.models import Max

from .choices import DatasetTask, VersionSource
from .ingest import Limits, detect_format, file_error, kinds_from_schema, read_table, spool, unpack
from .models import Dataset, DatasetVersion, FeatureSpec
from .preprocessing import SpecError, normalize_spec, spec_history_rows
from .profiling import profile_of
from .signals import dataset_version_created

logger = logging.getLogger(__name__)


def artifact_storage():
    return storages["artifacts"]


@transaction.atomic
def dataset_create(
    *,
    name: str,
    task: str,
    target_column: str,
    time_column: str = "",
    entity_column: str = "",
    description: str = "",
    user=None,
) -> Dataset:
    columns = {
        "target_column": target_column.strip(),
        "time_column": (time_column or "").strip(),
        "entity_column": (entity_column or "").strip(),
    }
    named = [(field, value) for field, value in columns.items() if value]
    seen = {}
    for field, value in named:
        if value in seen:
            raise ValidationError({field: f"is the same column as {seen[value]} ({value!r})."})
        seen[value] = field
    dataset = Dataset(name=name, task=task, description=description, created_by=user, **columns)
    dataset.full_clean()
    dataset.save()
    return dataset


@transaction.atomic
def dataset_update(*, dataset: Dataset, description: str) -> Dataset:
    """Only the description may change: versions and specs were checked against the columns."""
    dataset.description = description
    dataset.full_clean()
    dataset.save(update_fields=["description", "updated_at"])
    return dataset


def _required_columns(dataset: Dataset) -> list[tuple[str, str]]:
    return [
        (label, column)
        for label, column in (
            ("target column", dataset.target_column),
            ("time column", dataset.time_column),
            ("entity column", dataset.entity_column),
        )
        if column
    ]


def _numeric_expectations(dataset: Dataset) -> set[str]:
    """Columns that must hold numbers: those numeric in the previous version, a regression target."""
    expected = set()
    previous = dataset.versions.order_by("-version").first()
    if previous is not None:
        expected |= {name for name, kind in kinds_from_schema(previous.schema).items() if kind == "numeric"}
    if dataset.task == DatasetTask.REGRESSION:
        expected.add(dataset.target_column)
    return expected


@transaction.atomic
def dataset_version_create(
    *, dataset: Dataset, file, filename: str, user=None, source: str = VersionSource.UPLOAD
) -> tuple[DatasetVersion, bool]:
    """Stores an uploaded CSV/Parquet (plain, gzip-compressed or alone in a zip) as the dataset's next
    version, or returns the version that already holds identical content (created=False). A rejected
    file leaves no row and no stored file; the size limits (`ingest.Limits`, from settings) are checked
    while it is decompressed and read, before anything is stored.

    Sends `dataset_version_created` on commit when a new version was made."""
    if source not in VersionSource.values:
        raise ValidationError({"source": f"must be one of {', '.join(VersionSource.values)}."})
    file_format = detect_format(filename)
    limits = Limits.from_settings()
    spooled = spool(file)
    content = spooled
    try:
        content, file_format = unpack(spooled, filename=filename, file_format=file_format, limits=limits)
        existing = DatasetVersion.objects.filter(dataset=dataset, sha256=content.sha256).first()
        if existing is not None:
            return existing, False
        table = read_table(
            content.path,
            file_format,
            numeric_columns=_numeric_expectations(dataset),
            time_column=dataset.time_column,
            limits=limits,
        )
        names = list(table.frame.columns)
        for label, column in _required_columns(dataset):
            if column not in names:
                raise file_error(f"the {label} {column!r} is missing; the file has columns: {', '.join(names)}")
        if dataset.entity_column and table.frame[dataset.entity_column].isna().any():
            row = int(table.frame[dataset.entity_column].isna().to_numpy().nonzero()[0][0]) + 1
            raise file_error(f"row {row}, column {dataset.entity_column!r}: the entity is empty")
        profile = profile_of(table.frame, time_column=dataset.time_column)
        return _store_version(
            dataset=dataset,
            spooled=content,
            table=table,
            profile=profile,
            file_format=file_format,
            filename=filename,
            user=user,
            source=source,
        )
    finally:
        content.close()
        spooled.close()


def _store_version(*, dataset, spooled, table, profile, file_format, filename, user, source):
    storage = artifact_storage()
    name = f"datasets/{dataset.pk}/{spooled.sha256}.{file_format}"
    wrote = False
    try:
        # Number versions one at a time per dataset.
        Dataset.objects.select_for_update().filter(pk=dataset.pk).first()
        existing = DatasetVersion.objects.filter(dataset=dataset, sha256=spooled.sha256).first()
        if existing is not None:
            return existing, False
        if not storage.exists(name):
            with open(spooled.path, "rb") as handle:
                saved = storage.save(name, File(handle, name=name))
            wrote = True
            if saved != name:
                name = saved
        number = (dataset.versions.aggregate(top=Max("version"))["top"] or 0) + 1
        with transaction.atomic():
            version = DatasetVersion.objects.create(
                dataset=dataset,
                version=number,
                file=name,
                original_filename=(filename or "")[:255],
                file_format=file_format,
                size_bytes=spooled.size,
                sha256=spooled.sha256,
                rows=len(table.frame),
                schema=table.schema,
                profile=profile,
                source=source,
                created_by=user,
            )
    except IntegrityError:
        # The same content arrived concurrently and won the race.
        if wrote:
            storage.delete(name)
        existing = DatasetVersion.objects.filter(dataset=dataset, sha256=spooled.sha256).first()
        if existing is None:
            raise
        return existing, False
    except BaseException:
        if wrote:
            storage.delete(name)
        raise
    transaction.on_commit(lambda: dataset_version_created.send(sender=DatasetVersion, version=version))
    logger.info(
        "dataset %s: version %s stored (%s rows, sha256 %s)", dataset.name, number, version.rows, spooled.sha256[:12]
    )
    return version, True


def spec_validation_error(exc: SpecError) -> ValidationError:
    return ValidationError({"spec": [str(exc)]}, code="invalid_spec")


def dataset_column_kinds(dataset: Dataset) -> dict[str, str] | None:
    latest = dataset.versions.order_by("-version").first()
    return kinds_from_schema(latest.schema) if latest is not None else None


@transaction.atomic
def feature_spec_create(
    *, dataset: Dataset, name: str, spec: dict, description: str = "", user=None
) -> tuple[FeatureSpec, bool]:
    """Saves `spec` as the next version of the named spec, checked against the dataset's newest
    version's columns. Identical to the newest version of that name: returns it (created=False)."""
    try:
        normalized = normalize_spec(spec)
        kinds = dataset_column_kinds(dataset)
        history_rows = spec_history_rows(normalized, dataset=dataset, kinds=kinds) if kinds else None
    except SpecError as exc:
        raise spec_validation_error(exc) from None
    if history_rows is None:
        raise ValidationError({"dataset": "upload a version first: the spec is checked against its columns."})
    Dataset.objects.select_for_update().filter(pk=dataset.pk).first()
    latest = FeatureSpec.objects.filter(dataset=dataset, name=name).order_by("-version").first()
    if latest is not None and _canonical(latest.spec) == _canonical(normalized):
        return latest, False
    feature_spec = FeatureSpec(
        dataset=dataset,
        name=name,
        version=(latest.version + 1) if latest else 1,
        description=description or (latest.description if latest else ""),
        spec=normalized,
        history_rows=history_rows,
        created_by=user,
    )
    feature_spec.full_clean()
    feature_spec.save()
    return feature_spec, True


def _canonical(spec: dict) -> str:
    return json.dumps(spec, sort_keys=True)
