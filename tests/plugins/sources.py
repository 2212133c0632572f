"""Source code of throwaway plugin modules the tests write to disk."""

TEAM_LOGIT = """
    from sklearn.linear_model import LogisticRegression
    from apps.training.plugins import ModelType, ParamSpec

    class TeamLogit(ModelType):
        framework = "sklearn"
        name = "team_logit"
        params = {"c": ParamSpec("float", 1.0, 0.01, 100.0, log=True)}

        def build(self, *, task, params, n_features, n_outputs, window, seed):
            return LogisticRegression(C=params["c"])
"""
