from django.db import models


class DatasetTask(models.TextChoices):
    REGRESSION = "regression", "Regression"
    CLASSIFICATION = "classification", "Classification"


class VersionSource(models.TextChoices):
    UPLOAD = "upload", "API upload"
    ADMIN = "admin", "Admin upload"
    GENERATOR = "generator", "Generated (demo)"
    SKLEARN = "sklearn", "scikit-learn bundled dataset"


class FileFormat(models.TextChoices):
    CSV = "csv", "CSV"
    PARQUET = "parquet", "Parquet"
