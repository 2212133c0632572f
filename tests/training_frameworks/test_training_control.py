"""Cancellation, pruning, early stopping with best-weight restore, and the monitored metric."""

import numpy as np
import pytest

from apps.frameworks import get_adapter

from .support import TINY_PARAMS, RecordingReporter, make_data

NETWORKS = [("torch", "mlp"), ("torch", "lstm"), ("keras", "mlp"), ("keras", "lstm"), ("torch", "tcn")]
BOOSTERS = [("xgboost", "gradient_boosting"), ("lightgbm", "gradient_boosting")]


def _fit(framework, model_type, reporter, *, kind="binary", params=None, data=None, monitor=None):
    task = "regression" if kind == "regression" else "classification"
    return get_adapter(framework).fit(
        data=data or make_data(kind),
        task=task,
        model_type=model_type,
        params=params or TINY_PARAMS[(framework, model_type)],
        seed=1,
        reporter=reporter,
        monitor=monitor,
    )


@pytest.mark.parametrize(("framework", "model_type"), NETWORKS, ids=["-".join(n) for n in NETWORKS])
def test_a_network_checks_for_cancellation_at_every_batch(framework, model_type):
    # 210 training rows in batches of 32: the cancel arrives at the 4th check, inside epoch 1.
    reporter = RecordingReporter("cancelled", stop_after_checks=3)
    trained = _fit(framework, model_type, reporter)
    assert trained.stopped_reason == "cancelled"
    assert reporter.checks == 4, "training went on after should_stop() said cancelled"
    assert reporter.epochs == [] and trained.epochs_trained == 0
    with pytest.raises(RuntimeError, match="before its first epoch"):
        trained.predict(make_data("binary").X_test)


def test_gradient_boosting_checks_for_cancellation_at_every_stage():
    reporter = RecordingReporter("cancelled", stop_after_checks=3)
    trained = _fit("sklearn", "gradient_boosting", reporter, params={"max_iter": 60, "stage_size": 10})
    assert trained.stopped_reason == "cancelled"
    assert [e for e, _, _ in reporter.epochs] == [1, 2, 3] and trained.epochs_trained == 3
    assert trained.estimator.n_iter_ <= 30


@pytest.mark.parametrize(("framework", "model_type"), BOOSTERS, ids=[fw for fw, _ in BOOSTERS])
def test_xgboost_and_lightgbm_check_for_cancellation_before_every_round(framework, model_type):
    reporter = RecordingReporter("cancelled", stop_after_checks=3)
    trained = _fit(framework, model_type, reporter, params=TINY_PARAMS[(framework, model_type)] | {"n_estimators": 50})
    assert trained.stopped_reason == "cancelled"
    assert reporter.checks == 4, "training went on after should_stop() said cancelled"
    assert [e for e, _, _ in reporter.epochs] == [1, 2, 3] and trained.epochs_trained == 3
    assert trained.describe()["boosted_rounds"] <= 3


@pytest.mark.parametrize(
    ("framework", "model_type"), [("torch", "mlp"), ("keras", "mlp"), ("sklearn", "gradient_boosting"), *BOOSTERS]
)
def test_a_pruned_run_stops_at_the_epoch_boundary_and_still_predicts(framework, model_type):
    params = {
        ("sklearn", "gradient_boosting"): {"max_iter": 60, "stage_size": 10, "patience": 10},
        **{
            booster: TINY_PARAMS[booster] | {"n_estimators": 30, "rounds_per_epoch": 3, "patience": 10}
            for booster in BOOSTERS
        },
    }.get((framework, model_type), TINY_PARAMS[(framework, model_type)] | {"epochs": 6, "patience": 10})
    reporter = RecordingReporter("pruned", stop_after_epochs=2)
    trained = _fit(framework, model_type, reporter, params=params)
    assert trained.stopped_reason == "pruned"
    assert trained.epochs_trained == 2 and len(trained.history) == 2
    data = make_data("binary")
    assert trained.predict(data.X_test).shape == (data.X_test.shape[0],)


EARLY_STOPPING = {
    ("torch", "mlp"): {"epochs": 40, "hidden_size": 32, "learning_rate": 0.05, "patience": 2, "dropout": 0.0},
    ("torch", "lstm"): {
        "epochs": 40,
        "hidden_size": 16,
        "learning_rate": 0.05,
        "patience": 2,
        "window": 4,
        "dropout": 0.0,
    },
    ("keras", "mlp"): {"epochs": 40, "hidden_size": 32, "learning_rate": 0.05, "patience": 2, "dropout": 0.0},
    ("sklearn", "gradient_boosting"): {
        "max_iter": 400,
        "stage_size": 5,
        "learning_rate": 0.5,
        "patience": 2,
        "min_samples_leaf": 2,
    },
    ("xgboost", "gradient_boosting"): {"n_estimators": 400, "learning_rate": 0.5, "max_depth": 4, "patience": 3},
    ("lightgbm", "gradient_boosting"): {
        "n_estimators": 400,
        "learning_rate": 0.5,
        "num_leaves": 15,
        "min_child_samples": 3,
        "patience": 3,
    },
}


@pytest.mark.parametrize(("framework", "model_type"), list(EARLY_STOPPING), ids=["-".join(k) for k in EARLY_STOPPING])
def test_early_stopping_ends_on_a_stale_validation_loss_and_restores_the_best_epoch(framework, model_type):
    # A target of pure noise: the model can only overfit, so the validation loss turns up early.
    data = make_data("regression", noise_target=True)
    reporter = RecordingReporter()
    params = EARLY_STOPPING[(framework, model_type)]
    trained = _fit(framework, model_type, reporter, kind="regression", params=params, data=data)
    total = reporter.epochs[0][1]
    history = [m["val_loss"] for _, _, m in reporter.epochs]
    assert len(history) < total, "early stopping never triggered"
    best = int(np.argmin(history)) + 1
    assert trained.best_epoch == best and trained.stopped_reason is None
    assert len(history) == best + params["patience"]
    assert any("early stopping" in message for _, message in reporter.logs)
    # The returned model is the best epoch's, not the last one's.
    restored = trained.evaluate(data.X_val, data.y_val, data.groups_val)
    assert restored["rmse"] == pytest.approx(reporter.epochs[best - 1][2]["val_rmse"], rel=1e-5)


def test_early_stopping_follows_the_monitored_metric_and_its_direction():
    reporter = RecordingReporter()
    params = {"max_iter": 200, "stage_size": 5, "learning_rate": 0.5, "patience": 3, "min_samples_leaf": 2}
    trained = _fit(
        "sklearn",
        "gradient_boosting",
        reporter,
        kind="regression",
        params=params,
        monitor="r2",
        data=make_data("regression", noise_target=True),
    )
    r2 = [m["val_r2"] for _, _, m in reporter.epochs]
    assert trained.monitor == "val_r2"
    assert trained.best_epoch == int(np.argmax(r2)) + 1


def test_it_refuses_a_monitor_that_is_not_a_metric_of_the_task():
    with pytest.raises(ValueError, match="monitor: 'accuracy' is not a regression metric"):
        _fit("sklearn", "linear", RecordingReporter(), kind="regression", params={}, monitor="accuracy")


def test_it_refuses_a_stop_reason_outside_the_protocol():
    with pytest.raises(ValueError, match="should_stop"):
        _fit("sklearn", "linear", RecordingReporter("paused", stop_after_checks=0), params={})


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_a_network_whose_predictions_blow_up_fails_with_a_message_naming_the_learning_rate(framework):
    data = make_data("regression")
    for split in ("train", "val", "test"):
        setattr(data, f"X_{split}", getattr(data, f"X_{split}") * np.float32(1e36))  # overflows float32
    with pytest.raises(ValueError, match="learning_rate: training diverged in epoch 1"):
        _fit(
            framework, "mlp", RecordingReporter(), kind="regression", data=data, params=TINY_PARAMS[(framework, "mlp")]
        )
