"""Loading refuses anything that could run code, and anything that is not what meta.json says.

An attacker who can write the model directory can also rewrite meta.json, so most tests re-seal
the tampered file's sha256 to prove the format checks hold on their own.
"""

import json
import os
import pickle

import pytest
import torch

from apps.frameworks import ArtifactError, UnsafeArtifact, get_adapter, load_trained
from apps.frameworks.artifacts import file_sha256


def _save(fitted, framework, model_type, directory):
    trained, _ = fitted(framework, model_type, "binary")
    get_adapter(framework).save(trained, directory)
    return trained


def _reseal(directory, model_file):
    meta_path = directory / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["model_sha256"] = file_sha256(directory / model_file)
    meta_path.write_text(json.dumps(meta))


def test_a_torch_save_pickle_in_place_of_the_safetensors_file_is_refused(fitted, tmp_path):
    trained = _save(fitted, "torch", "mlp", tmp_path)
    torch.save(trained.network, tmp_path / "model.safetensors")  # a whole pickled module
    _reseal(tmp_path, "model.safetensors")
    with pytest.raises(UnsafeArtifact, match="pickled members"):
        get_adapter("torch").load(tmp_path)


def test_a_plain_pickle_in_place_of_the_skops_file_is_refused(fitted, tmp_path):
    trained = _save(fitted, "sklearn", "linear", tmp_path)
    (tmp_path / "model.skops").write_bytes(pickle.dumps(trained.estimator))
    _reseal(tmp_path, "model.skops")
    with pytest.raises(UnsafeArtifact, match="is a Python pickle"):
        load_trained(tmp_path)


def test_a_skops_file_holding_a_type_off_the_allowlist_is_refused(fitted, tmp_path):
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    _save(fitted, "sklearn", "linear", tmp_path)
    sio.dump(FunctionTransformer(func=os.system), tmp_path / "model.skops")
    _reseal(tmp_path, "model.skops")
    with pytest.raises(UnsafeArtifact, match="outside the allowlist: posix.system"):
        get_adapter("sklearn").load(tmp_path)


def test_a_keras_archive_with_a_lambda_layer_is_refused(fitted, tmp_path):
    from apps.frameworks.keras_adapter import keras_module

    _save(fitted, "keras", "mlp", tmp_path)
    keras = keras_module()
    inputs = keras.Input((6,))
    keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs)).save(tmp_path / "model.keras")
    _reseal(tmp_path, "model.keras")
    with pytest.raises(UnsafeArtifact, match="keras.layers.Lambda, which is not an allowed Keras object"):
        get_adapter("keras").load(tmp_path)


def test_bytes_that_are_not_safetensors_are_refused(fitted, tmp_path):
    _save(fitted, "torch", "lstm", tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 64)
    _reseal(tmp_path, "model.safetensors")
    with pytest.raises(UnsafeArtifact, match="not a safetensors file"):
        get_adapter("torch").load(tmp_path)


def test_a_model_file_changed_after_saving_is_refused(fitted, tmp_path):
    _save(fitted, "torch", "mlp", tmp_path)
    blob = bytearray((tmp_path / "model.safetensors").read_bytes())
    blob[-1] ^= 0xFF
    (tmp_path / "model.safetensors").write_bytes(bytes(blob))
    with pytest.raises(ArtifactError, match="does not match the sha256"):
        get_adapter("torch").load(tmp_path)


def test_it_refuses_a_directory_of_another_framework_or_without_meta(fitted, tmp_path):
    _save(fitted, "sklearn", "gradient_boosting", tmp_path)
    with pytest.raises(ArtifactError, match="holds a 'sklearn' model, not a torch one"):
        get_adapter("torch").load(tmp_path)
    (tmp_path / "meta.json").unlink()
    with pytest.raises(ArtifactError, match="has no meta.json"):
        load_trained(tmp_path)


def test_meta_json_cannot_point_the_loader_at_another_file(fitted, tmp_path):
    _save(fitted, "sklearn", "linear", tmp_path)
    meta = json.loads((tmp_path / "meta.json").read_text())
    meta["model_file"] = "../elsewhere.skops"
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="model_file must be 'model.skops'"):
        get_adapter("sklearn").load(tmp_path)
