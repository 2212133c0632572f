"""Evaluation plots stored at training time: a classifier's confusion matrix and ROC/PR curves agree
with its test metrics and show on its run and version pages; a regressor gets a residual summary."""

import re

import numpy as np
import pytest
from django.test import Client
from django.urls import reverse

from apps.training.services.training_pipeline import training_run_execute

from . import factories
from .conftest import start_inline

pytestmark = pytest.mark.usefixtures("inline_runs")


def _client(user):
    client = Client()
    client.force_login(user)
    return client


def test_a_classifier_stores_a_confusion_matrix_and_curves_that_agree_with_its_test_metrics(
    analyst_user, price_experiment
):
    run = training_run_execute(run_id=start_inline(price_experiment, framework="torch", model_type="mlp").pk)
    evaluation = run.evaluation
    counts = np.array(evaluation["confusion_matrix"]["counts"])
    assert evaluation["split"] == "test" and evaluation["confusion_matrix"]["labels"] == ["down", "up"]
    assert counts.sum() == evaluation["rows"] and counts.trace() / counts.sum() == pytest.approx(
        run.test_metrics["accuracy"], abs=1e-9
    )
    (roc,), (pr,) = evaluation["roc"], evaluation["pr"]
    assert roc["label"] == "up" and roc["auc"] == pytest.approx(run.test_metrics["roc_auc"], abs=1e-4)
    assert (roc["fpr"][0], roc["tpr"][0], roc["fpr"][-1], roc["tpr"][-1]) == (0.0, 0.0, 1.0, 1.0)
    assert pr["base_rate"] == pytest.approx(counts[1].sum() / counts.sum(), abs=1e-6)
    assert len(roc["fpr"]) <= 101 and len(pr["recall"]) <= 101

    for url in (
        reverse("admin:training_trainingrun_change", args=[run.pk]),
        reverse("admin:registry_modelversion_change", args=[run.model_versions.get().pk]),
    ):
        html = _client(analyst_user).get(url).content.decode()
        assert 'id="confusion-matrix"' in html and 'id="roc-curve"' in html and 'id="pr-curve"' in html
        cells = re.findall(r'<td class="num" style="background:#[0-9a-f]{6};color:#111827">(\d+)</td>', html)
        assert [int(c) for c in cells] == counts.ravel().tolist()


def test_a_regressor_stores_a_residual_summary_and_plot(analyst_user, staff_user):
    dataset, _, spec = factories.diabetes_dataset(user=staff_user)
    experiment = factories.experiment(
        dataset=dataset, spec=spec, name="tiny-diabetes", framework="sklearn", model_type="linear", user=staff_user
    )
    run = training_run_execute(run_id=start_inline(experiment).pk)
    residuals = run.evaluation["residuals"]
    assert "confusion_matrix" not in run.evaluation
    assert residuals["mae"] == pytest.approx(run.test_metrics["mae"], rel=1e-4)
    q = residuals["quantiles"]
    assert q["min"] <= q["p25"] <= q["median"] <= q["p75"] <= q["max"]
    assert sum(residuals["histogram"]["counts"]) == run.evaluation["rows"]
    html = _client(analyst_user).get(reverse("admin:training_trainingrun_change", args=[run.pk])).content.decode()
    plot = html[html.index('id="residual-plot"') :]
    assert 'id="residual-summary"' in html and plot[: plot.index("</figure>")].count("<circle") == len(
        residuals["points"]["predicted"]
    )
    shown = re.findall(r'<th scope="row">(min|p5|p25|median|p75|p95|max)</th>', html)
    assert shown == ["min", "p5", "p25", "median", "p75", "p95", "max"], "quantiles read low to high"
