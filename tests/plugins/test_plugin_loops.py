"""Plugins that bring their own loop stop when asked; plugin networks with tied weights round-trip."""

import numpy as np

from apps.frameworks import get_adapter
from tests.training_frameworks.support import RecordingReporter, make_data


def test_an_own_loop_stops_when_cancelled_and_keeps_its_last_reported_best():
    data = make_data("binary")
    # 210 rows in batches of 64: 4 checks per epoch, so check 9 is inside epoch 3.
    reporter = RecordingReporter("cancelled", stop_after_checks=8)
    trained = get_adapter("sklearn").fit(
        data=data,
        task="classification",
        model_type="sgd_linear",
        params={"epochs": 10, "patience": 10},
        reporter=reporter,
    )
    assert trained.stopped_reason == "cancelled" and reporter.checks == 9
    assert [e for e, _, _ in reporter.epochs] == [1, 2] and trained.epochs_trained == 2
    assert trained.best_epoch in (1, 2)
    assert trained.predict(data.X_test).shape == (data.X_test.shape[0],)


def test_an_own_loop_cancelled_before_its_first_epoch_has_nothing_to_save():
    reporter = RecordingReporter("cancelled", stop_after_checks=0)
    trained = get_adapter("sklearn").fit(
        data=make_data("regression"), task="regression", model_type="sgd_linear", reporter=reporter
    )
    assert trained.stopped_reason == "cancelled" and trained.epochs_trained == 0 and trained.estimator is None


TIED = """
    from torch import nn
    from apps.training.plugins import ModelType, ParamSpec

    class TiedAutoencoderHead(nn.Module):
        def __init__(self, n_features, n_outputs, width):
            super().__init__()
            self.encode = nn.Linear(n_features, width)
            self.decode = nn.Linear(width, n_features)
            self.decode.weight = nn.Parameter(self.encode.weight.t())  # not tied: a copy
            self.again = self.encode  # tied: the same module twice
            self.head = nn.Linear(width, n_outputs)

        def forward(self, x):
            return self.head(self.again(x).relu())

    class Tied(ModelType):
        framework = "torch"
        name = "tied"
        params = {"width": ParamSpec("int", 8, 2, 64)}

        def build(self, *, task, params, n_features, n_outputs, window, seed):
            return TiedAutoencoderHead(n_features, n_outputs, params["width"])
"""


def test_a_plugin_network_with_shared_tensors_saves_and_loads(plugin_module, tmp_path):
    plugin_module("tied_mod", TIED)
    adapter, data = get_adapter("torch"), make_data("multiclass")
    trained = adapter.fit(data=data, task="classification", model_type="tied", params={"epochs": 2})
    adapter.save(trained, tmp_path / "model")
    loaded = adapter.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict_proba(data.X_test), trained.predict_proba(data.X_test))
