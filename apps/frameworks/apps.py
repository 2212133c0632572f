from django.apps import AppConfig


class FrameworksConfig(AppConfig):
    """The framework adapters and model-type plugins: train, save and safely load a model in each
    library. No models of its own; registry (loading) and training (fitting) both build on it."""

    name = "apps.frameworks"
    label = "frameworks"
    verbose_name = "Model frameworks"
