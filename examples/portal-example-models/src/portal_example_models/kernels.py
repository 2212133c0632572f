"""A scikit-learn Pipeline: standardise, map to approximate RBF-kernel features, fit a linear model."""

from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from apps.training.plugins import REGRESSION, ModelType, ParamSpec


class KernelLinear(ModelType):
    framework = "sklearn"
    name = "rbf_kernel_linear"
    description = "Nystroem RBF-kernel features + ridge / logistic regression: smooth non-linear effects."
    params = {
        "n_components": ParamSpec("int", 50, 5, 1000, help="kernel features (Nystroem landmarks)"),
        "gamma": ParamSpec("float", 0.1, 1e-4, 10.0, log=True, help="RBF kernel width (1 / length scale^2)"),
        "alpha": ParamSpec("float", 1.0, 1e-4, 1e4, log=True, help="L2 regularisation strength"),
    }
    # Every step is a scikit-learn type skops trusts by default, so trusted_types stays empty; a
    # step holding another library's objects would list their type names here.

    def build(self, *, task, params, n_features, n_outputs, window, seed):
        if task == REGRESSION:
            model = Ridge(alpha=params["alpha"])
        else:
            model = LogisticRegression(C=1.0 / params["alpha"], max_iter=1000, random_state=seed)
        return Pipeline(
            [
                ("scale", StandardScaler()),
                (
                    "kernel",
                    Nystroem(
                        kernel="rbf", gamma=params["gamma"], n_components=params["n_components"], random_state=seed
                    ),
                ),
                ("model", model),
            ]
        )
