"""Device resolution: CPU placement here, a clear refusal when a GPU is asked for and absent."""

import pytest
import torch

from apps.frameworks import NoGpuAvailable, get_adapter
from apps.frameworks import resolve_device
from apps.frameworks.devices import training_threads

from .support import TINY_PARAMS, RecordingReporter, make_data

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="this host has a GPU")
has_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_cpu_resolves_to_each_librarys_cpu_device():
    assert resolve_device("cpu", framework="torch") == "cpu"
    assert resolve_device("cpu", framework="keras") == "/CPU:0"
    assert resolve_device("cpu", framework="sklearn") == "cpu"
    assert resolve_device("cpu", framework="xgboost") == "cpu"
    assert resolve_device("cpu", framework="lightgbm") == "cpu"


def test_it_refuses_a_device_name_it_does_not_know():
    with pytest.raises(ValueError, match="device must be one of"):
        resolve_device("tpu")


@no_gpu
@pytest.mark.parametrize("framework", ["torch", "keras", "xgboost", "lightgbm"])
def test_asking_for_a_gpu_on_a_host_without_one_explains_where_to_route_the_run(framework):
    with pytest.raises(NoGpuAvailable, match=r"run 42 asked for a GPU but this worker \(.+\) has none") as caught:
        resolve_device("gpu", framework=framework, run_label="run 42")
    assert "-Q gpu on a GPU host" in str(caught.value)


@no_gpu
def test_fit_on_gpu_without_one_fails_before_training():
    reporter = RecordingReporter()
    with pytest.raises(NoGpuAvailable):
        get_adapter("torch").fit(
            data=make_data("binary"),
            task="classification",
            model_type="mlp",
            params=TINY_PARAMS[("torch", "mlp")],
            device="gpu",
            reporter=reporter,
        )
    assert reporter.epochs == []


def test_scikit_learn_refuses_the_gpu_whatever_the_host():
    assert get_adapter("sklearn").supports_gpu is False
    with pytest.raises(ValueError, match="device: scikit-learn models train on the CPU only"):
        resolve_device("gpu", framework="sklearn")


def test_a_cpu_run_keeps_the_network_and_its_predictions_on_the_cpu(fitted):
    trained, _ = fitted("torch", "lstm", "regression")
    assert trained.device == "cpu"
    assert {p.device.type for p in trained.network.parameters()} == {"cpu"}
    keras_trained, _ = fitted("keras", "mlp", "regression")
    assert keras_trained.device == "/CPU:0"
    assert all("CPU" in v.value.device.upper() for v in keras_trained.model.weights)


@has_gpu
def test_a_gpu_run_trains_on_cuda_and_loads_back_on_cpu(tmp_path):
    data = make_data("binary")
    adapter = get_adapter("torch")
    trained = adapter.fit(
        data=data, task="classification", model_type="lstm", params=TINY_PARAMS[("torch", "lstm")], device="gpu"
    )
    assert {p.device.type for p in trained.network.parameters()} == {"cuda"}
    adapter.save(trained, tmp_path)
    on_cpu = adapter.load(tmp_path, device="cpu")
    assert (
        on_cpu.predict(data.X_test, data.groups_test) == trained.predict(data.X_test, data.groups_test)
    ).mean() > 0.95


def test_training_threads_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("TRAINING_THREADS", "3")
    assert training_threads() == 3
    monkeypatch.setenv("TRAINING_THREADS", "many")
    with pytest.raises(ValueError, match="TRAINING_THREADS must be a whole number"):
        training_threads()
    monkeypatch.delenv("TRAINING_THREADS")
    assert 1 <= training_threads() <= 4
