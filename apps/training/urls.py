from django.urls import path

from . import api

urlpatterns = [
    path("api/v1/experiments/", api.ExperimentListApi.as_view(), name="api-experiments"),
    path("api/v1/experiments/<int:pk>/", api.ExperimentDetailApi.as_view(), name="api-experiment"),
    path("api/v1/experiments/<int:pk>/train", api.ExperimentTrainApi.as_view(), name="api-experiment-train"),
    path("api/v1/runs/", api.RunListApi.as_view(), name="api-runs"),
    path("api/v1/runs/<int:pk>/", api.RunDetailApi.as_view(), name="api-run"),
    path("api/v1/runs/<int:pk>/cancel", api.RunCancelApi.as_view(), name="api-run-cancel"),
    path("api/v1/runs/<int:pk>/retry", api.RunRetryApi.as_view(), name="api-run-retry"),
    path("api/v1/runs/<int:pk>/logs", api.RunLogsApi.as_view(), name="api-run-logs"),
    path("api/v1/runs/<int:pk>/epochs", api.RunEpochsApi.as_view(), name="api-run-epochs"),
    path("api/v1/frameworks/", api.FrameworkListApi.as_view(), name="api-frameworks"),
    # A model's version list with registering a run (POST): registering needs the run.
    path("api/v1/models/<str:name>/versions/", api.ModelVersionListApi.as_view(), name="api-model-versions"),
]
