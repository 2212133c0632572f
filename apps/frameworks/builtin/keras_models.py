"""Built-in Keras model types: the same MLP and LSTM as the torch ones, from built-in layers only."""

from __future__ import annotations

from ..model_types import ModelType
from ..neural import NEURAL_DESCRIPTIONS, neural_arch_params


def _keras():
    from ..keras_adapter import keras_module

    return keras_module()


class KerasMLP(ModelType):
    framework = "keras"
    name = "mlp"
    description = NEURAL_DESCRIPTIONS["mlp"]
    params = neural_arch_params(recurrent=False)

    def build(self, *, task, params, n_features, n_outputs, window, seed):
        keras = _keras()
        inputs = keras.Input(shape=(n_features,), name="features")
        x = inputs
        for i in range(params["num_layers"]):
            x = keras.layers.Dense(params["hidden_size"], activation="relu", name=f"dense_{i}")(x)
            x = keras.layers.Dropout(params["dropout"], name=f"dropout_{i}")(x)
        outputs = keras.layers.Dense(n_outputs, name="head")(x)
        return keras.Model(inputs, outputs, name="mlp")


class KerasLSTM(ModelType):
    framework = "keras"
    name = "lstm"
    description = NEURAL_DESCRIPTIONS["lstm"]
    params = neural_arch_params(recurrent=True)
    uses_history = True

    def build(self, *, task, params, n_features, n_outputs, window, seed):
        keras = _keras()
        inputs = keras.Input(shape=(window, n_features), name="window")
        x = inputs
        for i in range(params["num_layers"]):
            x = keras.layers.LSTM(
                params["hidden_size"], return_sequences=i < params["num_layers"] - 1, name=f"lstm_{i}"
            )(x)
            x = keras.layers.Dropout(params["dropout"], name=f"dropout_{i}")(x)
        outputs = keras.layers.Dense(n_outputs, name="head")(x)
        return keras.Model(inputs, outputs, name="lstm")
