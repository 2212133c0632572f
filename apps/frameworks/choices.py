from django.db import models


class Framework(models.TextChoices):
    TORCH = "torch", "PyTorch"
    KERAS = "keras", "TensorFlow / Keras"
    SKLEARN = "sklearn", "scikit-learn"
    XGBOOST = "xgboost", "XGBoost"
    LIGHTGBM = "lightgbm", "LightGBM"


# Frameworks whose training loop feeds history windows (batch, window, n_features) to a model type
# (declared here, not on the adapters, so discovery checks plugins without importing the libraries).
HISTORY_FRAMEWORKS = {"torch": True, "keras": True, "sklearn": False, "xgboost": False, "lightgbm": False}
