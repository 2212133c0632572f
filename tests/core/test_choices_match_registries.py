"""Each choices enum (what the database, forms and API accept) equals the registry that acts on it,
so a value cannot be stored that nothing can run, nor a plug-in registered that nobody can pick."""

import os
import subprocess
import sys

from django.conf import settings
from django.core.management import load_command_class

from apps.datasets.choices import DatasetTask, FileFormat
from apps.datasets.ingest import detect_format
from apps.deployments.choices import OPEN_ROLLOUT_STATUSES, TERMINAL_ROLLOUT_STATUSES, RolloutAction, RolloutStatus
from apps.deployments.serializers import ROLLOUT_ACTIONS
from apps.deployments.services.rollouts import ALLOWED_FROM
from apps.frameworks import metrics
from apps.training.choices import (
    RUN_ACTIVE,
    RUN_TERMINAL,
    RUN_TRANSITIONS,
    Device,
    Framework,
    RunStatus,
    StopReason,
    stopped_status,
)
from apps.frameworks import _ADAPTER_CLASSES, FRAMEWORKS, get_adapter
from apps.frameworks.choices import HISTORY_FRAMEWORKS
from apps.frameworks.devices import DEVICES
from apps.frameworks.discovery import catalog
from apps.training.serializers import RunCancelSerializer
from apps.tuning.choices import (
    STUDY_TERMINAL,
    STUDY_TRANSITIONS,
    TRIAL_ACTIVE,
    TRIAL_TERMINAL,
    TRIAL_TRANSITIONS,
    PrunerKind,
    Strategy,
    StudyStatus,
    TrialStatus,
)
from apps.tuning.pruners import PRUNERS
from apps.tuning.strategies import STRATEGIES
from tests.registry.test_storage_contract import CONTRACT_BACKENDS


def test_framework_choices_are_the_adapters_and_every_adapter_answers_to_its_choice():
    assert list(FRAMEWORKS) == Framework.values
    assert set(_ADAPTER_CLASSES) == set(Framework.values) == set(HISTORY_FRAMEWORKS)
    for framework in Framework.values:
        assert get_adapter(framework).name == framework


def test_every_catalogued_model_type_belongs_to_a_framework_choice_and_supports_known_tasks():
    for (framework, name), model_type in catalog().types.items():
        assert framework in Framework.values, name
        assert set(model_type.tasks) <= set(DatasetTask.values), (framework, name)


def test_strategy_choices_are_the_strategy_registry():
    assert set(Strategy.values) == set(STRATEGIES)


def test_pruner_choices_are_the_pruner_registry():
    assert set(PrunerKind.values) == set(PRUNERS)


def test_device_choices_are_the_devices_training_resolves_and_the_train_command_offers():
    assert set(Device.values) == set(DEVICES)
    parser = load_command_class("apps.training", "train").create_parser("manage.py", "train")
    device = next(action for action in parser._actions if action.dest == "device")
    framework = next(action for action in parser._actions if action.dest == "framework")
    assert set(device.choices) == set(Device.values)
    assert set(framework.choices) == set(Framework.values)


def test_stop_reasons_are_what_the_cancel_api_accepts_and_each_ends_in_its_own_status():
    assert set(RunCancelSerializer().fields["reason"].choices) == set(StopReason.values)
    statuses = {stopped_status(reason) for reason in StopReason.values}
    assert len(statuses) == len(StopReason.values) and statuses <= RUN_TERMINAL


def test_dataset_tasks_are_the_tasks_the_metrics_know():
    assert set(DatasetTask.values) == set(metrics.TASKS) == set(metrics.DEFAULT_METRIC)
    for task in DatasetTask.values:
        assert metrics.DEFAULT_METRIC[task] in metrics.metric_names(task)
    assert {m.task for m in metrics.METRICS.values()} <= {*metrics.TASKS, None}


def test_every_file_format_choice_is_one_an_upload_can_be_detected_as():
    detected = {detect_format(name) for name in ("a.csv", "a.txt", "a.parquet", "a.pq", "a.csv.gz", "a.parquet.gz")}
    assert detected == set(FileFormat.values)


def test_every_status_has_a_transition_row_and_is_either_active_or_terminal():
    for statuses, table, terminal in (
        (RunStatus, RUN_TRANSITIONS, RUN_TERMINAL),
        (StudyStatus, STUDY_TRANSITIONS, STUDY_TERMINAL),
        (TrialStatus, TRIAL_TRANSITIONS, TRIAL_TERMINAL),
    ):
        assert set(table) == set(statuses.values), statuses.__name__
        assert all(set(targets) <= set(statuses.values) for targets in table.values()), statuses.__name__
        # A terminal status has no way out; every other one has at least one.
        assert {s for s, targets in table.items() if not targets} == set(terminal), statuses.__name__
    assert RUN_ACTIVE | RUN_TERMINAL == set(RunStatus.values) and not RUN_ACTIVE & RUN_TERMINAL
    assert TRIAL_ACTIVE | TRIAL_TERMINAL == set(TrialStatus.values) and not TRIAL_ACTIVE & TRIAL_TERMINAL


def test_rollout_actions_are_the_state_machine_s_and_the_api_s_and_statuses_split_open_or_terminal():
    assert set(ALLOWED_FROM) == set(RolloutAction.values) == set(ROLLOUT_ACTIONS)
    assert all(set(sources) <= set(OPEN_ROLLOUT_STATUSES) for sources in ALLOWED_FROM.values())
    assert set(OPEN_ROLLOUT_STATUSES) | set(TERMINAL_ROLLOUT_STATUSES) == set(RolloutStatus.values)
    assert not set(OPEN_ROLLOUT_STATUSES) & set(TERMINAL_ROLLOUT_STATUSES)


def test_every_artifact_backend_the_settings_can_select_runs_the_storage_contract():
    """The settings pick local or S3 storage from the environment; load them both ways, as a
    deployment would, and check the storage contract suite runs each backend they can name."""
    selectable = set()
    for bucket in ("", "contract-check"):
        env = {**os.environ, "AWS_STORAGE_BUCKET_NAME": bucket}
        printed = subprocess.run(
            [
                sys.executable,
                "-c",
                "from mlops_portal import settings; print(settings.STORAGES['artifacts']['BACKEND'])",
            ],
            env=env,
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        selectable.add(printed.stdout.strip())
    assert selectable == set(CONTRACT_BACKENDS)
