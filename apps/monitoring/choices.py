from django.db import models


class PredictionStatus(models.TextChoices):
    OK = "ok", "OK"
    CLIENT_ERROR = "client_error", "Rejected input"
    SERVER_ERROR = "server_error", "Model error"
