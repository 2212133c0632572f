"""Built-in XGBoost and LightGBM model types: gradient-boosted trees with the usual knobs.

Both use their adapter's boosting loop (rounds, learning rate, early stopping, `rounds_per_epoch`);
`build` only turns the validated params into the library's native training parameters. A plugin
declares another booster the same way, e.g. XGBoost's dart:

    class XGBoostDart(ModelType):
        framework = "xgboost"
        name = "dart"
        params = {"rate_drop": ParamSpec("float", 0.1, 0.0, 1.0)}

        def build(self, *, task, params, n_features, n_outputs, window, seed):
            return {"booster": "dart", "rate_drop": params["rate_drop"]}
"""

from __future__ import annotations

from ..fitting import ParamSpec
from ..model_types import ModelType

_SAMPLING = {
    "subsample": ParamSpec("float", 1.0, 0.1, 1.0, help="share of the training rows each tree is grown on"),
    "colsample_bytree": ParamSpec("float", 1.0, 0.1, 1.0, help="share of the features each tree may split on"),
}


class XGBoostTrees(ModelType):
    framework = "xgboost"
    name = "gradient_boosting"
    description = "XGBoost gradient-boosted trees (hist); rounds_per_epoch boosting rounds per reported epoch."
    params = {
        "max_depth": ParamSpec("int", 6, 1, 16, help="deepest level a tree may grow to"),
        "min_child_weight": ParamSpec(
            "float", 1.0, 0.0, 1000.0, help="least hessian sum in a leaf (about the row count for regression)"
        ),
        **_SAMPLING,
        "reg_lambda": ParamSpec("float", 1.0, 0.0, 1000.0, help="L2 penalty on leaf weights"),
        "reg_alpha": ParamSpec(
            "float", 0.0, 0.0, 1000.0, help="L1 penalty on leaf weights (regression: in target units, keep it small)"
        ),
    }

    def build(self, *, task, params, n_features, n_outputs, window, seed):
        return {
            "booster": "gbtree",
            "tree_method": "hist",
            "max_depth": params["max_depth"],
            "min_child_weight": params["min_child_weight"],
            "subsample": params["subsample"],
            "colsample_bytree": params["colsample_bytree"],
            "lambda": params["reg_lambda"],
            "alpha": params["reg_alpha"],
        }


class LightGBMTrees(ModelType):
    framework = "lightgbm"
    name = "gradient_boosting"
    description = "LightGBM leaf-wise gradient-boosted trees; rounds_per_epoch boosting rounds per reported epoch."
    params = {
        "num_leaves": ParamSpec("int", 31, 2, 1024, help="most leaves per tree (trees grow leaf-wise)"),
        "min_child_samples": ParamSpec("int", 20, 1, 1000, help="fewest training rows in a leaf"),
        **_SAMPLING,
        "reg_lambda": ParamSpec("float", 0.0, 0.0, 1000.0, help="L2 penalty on leaf weights"),
        "reg_alpha": ParamSpec(
            "float", 0.0, 0.0, 1000.0, help="L1 penalty on leaf weights (regression: in target units, keep it small)"
        ),
    }

    def build(self, *, task, params, n_features, n_outputs, window, seed):
        return {
            "boosting": "gbdt",
            "num_leaves": params["num_leaves"],
            "min_data_in_leaf": params["min_child_samples"],
            "bagging_fraction": params["subsample"],
            # LightGBM ignores bagging_fraction unless rows are re-drawn every bagging_freq rounds.
            "bagging_freq": 1 if params["subsample"] < 1.0 else 0,
            "feature_fraction": params["colsample_bytree"],
            "lambda_l2": params["reg_lambda"],
            "lambda_l1": params["reg_alpha"],
        }
