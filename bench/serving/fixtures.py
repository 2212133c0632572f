"""Benchmark fixtures, built in the bench's own database through the portal's own services.

A numeric table (8 features, binary label) without feature steps, so the portal's preprocessor
passes the raw columns through and MLflow can serve the very same estimator on the same input.
Two scikit-learn versions split 50/50 (routing is exercised) and one PyTorch MLP.
"""

import io
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

FEATURES = [f"f{i}" for i in range(8)]
IDENTITY_SPEC = {"version": 1, "steps": []}


def table(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(FEATURES))).round(4)
    y = (X @ rng.normal(size=len(FEATURES)) + rng.normal(0, 0.5, n) > 0).astype(int)
    return pd.DataFrame(X, columns=FEATURES).assign(label=y)


def _train(*, experiment, framework, model_type, params, user, seed):
    from apps.training.services.training_pipeline import training_run_execute, training_run_start

    run = training_run_start(
        experiment=experiment,
        framework=framework,
        model_type=model_type,
        params=params,
        user=user,
        seed=seed,
        dispatch=False,
    )
    run = training_run_execute(run_id=run.pk)
    if run.status != "succeeded":
        raise RuntimeError(f"bench training failed: {run.error_message}")
    return run.model_versions.get()


def build() -> dict:
    from django.core.files.base import ContentFile

    from apps.core.roles import ANALYST, ML_STAFF
    from apps.core.services import api_token_create, user_with_role_ensure
    from apps.datasets.services import dataset_create, dataset_version_create, feature_spec_create
    from apps.deployments.services.model_deployment_service import deployment_create, deployment_set_traffic
    from apps.registry.storage import artifact_fetch
    from apps.training.services.experiments import experiment_create

    staff = user_with_role_ensure(username="bench-staff", password="bench-staff-pass-123", role=ML_STAFF)
    client = user_with_role_ensure(username="bench-client", password="bench-client-pass-123", role=ANALYST)
    _, token = api_token_create(user=client, name="bench")
    dataset = dataset_create(name="bench-table", task="classification", target_column="label", user=staff)
    buffer = io.StringIO()
    table().to_csv(buffer, index=False)
    dataset_version_create(
        dataset=dataset, file=ContentFile(buffer.getvalue().encode()), filename="bench.csv", user=staff
    )
    spec, _ = feature_spec_create(dataset=dataset, name="identity", spec=IDENTITY_SPEC, user=staff)
    sk_experiment = experiment_create(
        name="bench-sklearn",
        dataset=dataset,
        feature_spec=spec,
        user=staff,
        default_framework="sklearn",
        default_model_type="linear",
    )
    torch_experiment = experiment_create(
        name="bench-torch",
        dataset=dataset,
        feature_spec=spec,
        user=staff,
        default_framework="torch",
        default_model_type="mlp",
    )
    sk_a = _train(experiment=sk_experiment, framework="sklearn", model_type="linear", params={}, user=staff, seed=0)
    sk_b = _train(
        experiment=sk_experiment, framework="sklearn", model_type="linear", params={"alpha": 2.0}, user=staff, seed=1
    )
    torch_version = _train(
        experiment=torch_experiment,
        framework="torch",
        model_type="mlp",
        params={"epochs": 3, "hidden_size": 32},
        user=staff,
        seed=0,
    )
    sklearn_deployment = deployment_create(name="bench-sklearn", model_version=sk_a, user=staff)
    deployment_set_traffic(
        deployment=sklearn_deployment,
        user=staff,
        allocations=[{"model_version": sk_a, "weight": 50}, {"model_version": sk_b, "weight": 50}],
    )
    deployment_create(name="bench-torch", model_version=torch_version, user=staff)

    export = Path(tempfile.mkdtemp(prefix="bench-serving-artifacts-"))
    for name, version in (("sklearn", sk_a), ("torch", torch_version)):
        artifact_fetch(uri=version.artifact_uri, sha256=version.artifact_sha256, dest=str(export / name))
    return {
        "token": token,
        "sklearn_version_id": sk_a.pk,
        "torch_version_id": torch_version.pk,
        "artifacts": {"sklearn": str(export / "sklearn" / "model"), "torch": str(export / "torch" / "model")},
    }
