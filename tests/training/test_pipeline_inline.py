"""The pipeline executed in-process (as seed_demo does): status machine, logs, metrics, artifact."""

import pandas as pd
import pytest

from apps.registry.loading import load_model_version
from apps.training.choices import RunStatus
from apps.training.models import RunEvent, RunLogLine
from apps.training.services.training_pipeline import training_run_execute

from .conftest import start_inline

pytestmark = pytest.mark.usefixtures("inline_runs")


def test_a_run_goes_from_queued_to_a_registered_loadable_version(price_experiment):
    run = start_inline(price_experiment)
    assert run.status == RunStatus.QUEUED and run.queue == "cpu"

    run = training_run_execute(run_id=run.pk)

    assert run.status == RunStatus.SUCCEEDED, run.error_message
    assert run.attempts == 1 and run.progress == 100.0
    assert [e.to_status for e in RunEvent.objects.filter(run=run).order_by("id")] == ["queued", "running", "succeeded"]
    assert set(run.val_metrics) >= {"accuracy", "f1"} and run.primary_metric_value == run.val_metrics["accuracy"]
    assert run.code_version and run.library_versions["scikit-learn"]
    version = run.model_versions.get()
    assert (version.registered_model.name, version.version) == (price_experiment.name, 1)
    assert version.dataset_sha256 == run.dataset_version.sha256
    loaded = load_model_version(version)
    rows = pd.DataFrame(loaded.input_example["rows"])
    predictions, labels = loaded.predict_raw(rows)
    assert predictions == loaded.input_example["predictions"]
    assert set(predictions) <= {"down", "up"} and labels == ["AAA", "BBB"]


def test_log_lines_are_numbered_one_by_one_without_gaps(price_experiment):
    run = training_run_execute(run_id=start_inline(price_experiment).pk)
    seqs = list(RunLogLine.objects.filter(run=run).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 4
    assert run.log_seq == seqs[-1]


def test_the_signature_says_which_raw_columns_and_how_much_history_a_prediction_needs(price_experiment):
    run = training_run_execute(run_id=start_inline(price_experiment).pk)
    signature = run.signature
    assert signature["raw_columns"] == ["date", "ticker", "close", "volume"]
    # log return (1 row back) + rolling window of 5 over it + lag 2 of it: the preprocessor decides;
    assert signature["history_rows"] == signature["preprocessor_history_rows"] + signature["window"] - 1
    assert signature["classes"] == ["down", "up"] and signature["entity_column"] == "ticker"
    assert {c["name"] for c in signature["inputs"]} == set(signature["raw_columns"])


@pytest.mark.parametrize("framework", ["torch", "sklearn"])
def test_the_same_seed_data_and_framework_give_the_same_metrics(price_experiment, framework):
    first = training_run_execute(run_id=start_inline(price_experiment, framework=framework, seed=11).pk)
    second = training_run_execute(run_id=start_inline(price_experiment, framework=framework, seed=11).pk)
    assert first.status == second.status == RunStatus.SUCCEEDED
    assert first.val_metrics == second.val_metrics and first.test_metrics == second.test_metrics


def test_a_recurrent_model_predicts_from_the_last_window_of_each_entity(price_experiment):
    run = training_run_execute(run_id=start_inline(price_experiment, framework="torch", model_type="lstm").pk)
    assert run.status == RunStatus.SUCCEEDED, run.error_message
    assert run.signature["window"] == 3
    loaded = load_model_version(run.model_versions.get())
    rows = pd.DataFrame(loaded.input_example["rows"])
    assert len(rows) == 2 * loaded.history_rows
    assert loaded.predict_raw(rows)[0] == loaded.input_example["predictions"]
