from django.urls import path

from . import api, api_monitoring, api_predict

urlpatterns = [
    path("api/v1/deployments/", api.DeploymentListApi.as_view(), name="deployment-list"),
    path("api/v1/deployments/<slug:name>", api.DeploymentDetailApi.as_view(), name="deployment-detail"),
    path("api/v1/deployments/<slug:name>/events", api.DeploymentEventsApi.as_view(), name="deployment-events"),
    path("api/v1/deployments/<slug:name>/traffic", api.DeploymentTrafficApi.as_view(), name="deployment-traffic"),
    path("api/v1/deployments/<slug:name>/rollback", api.DeploymentRollbackApi.as_view(), name="deployment-rollback"),
    path("api/v1/deployments/<slug:name>/rollouts", api.RolloutCreateApi.as_view(), name="rollout-create"),
    path("api/v1/deployments/<slug:name>/rollout/<str:action>", api.RolloutActionApi.as_view(), name="rollout-action"),
    path("api/v1/deployments/<slug:name>/predict", api_predict.PredictApi.as_view(), name="deployment-predict"),
    path("api/v1/deployments/<slug:name>/feedback", api_predict.FeedbackApi.as_view(), name="deployment-feedback"),
    # MLflow's scoring-server paths, per deployment.
    path(
        "api/v1/deployments/<slug:name>/invocations",
        api_predict.InvocationsApi.as_view(),
        name="deployment-invocations",
    ),
    path("api/v1/deployments/<slug:name>/ping", api_predict.PingApi.as_view(), name="deployment-ping"),
    path("api/v1/deployments/<slug:name>/version", api_predict.VersionApi.as_view(), name="deployment-version"),
    path(
        "api/v1/monitoring/deployments/<slug:name>/series",
        api_monitoring.DeploymentSeriesApi.as_view(),
        name="monitoring-series",
    ),
    path(
        "api/v1/monitoring/deployments/<slug:name>/summary",
        api_monitoring.DeploymentSummaryApi.as_view(),
        name="monitoring-summary",
    ),
    path("metrics", api_monitoring.metrics_view, name="metrics"),
    path("v2", api_predict.V2ServerMetadataApi.as_view(), name="v2-server-metadata"),
    path("v2/health/live", api_predict.V2LiveApi.as_view(), name="v2-live"),
    path("v2/health/ready", api_predict.V2ReadyApi.as_view(), name="v2-ready"),
    path("v2/models/<slug:name>", api_predict.V2ModelMetadataApi.as_view(), name="v2-model-metadata"),
    path("v2/models/<slug:name>/ready", api_predict.V2ModelReadyApi.as_view(), name="v2-model-ready"),
    path("v2/models/<slug:name>/infer", api_predict.V2InferApi.as_view(), name="v2-model-infer"),
    path(
        "v2/models/<slug:name>/versions/<str:version>",
        api_predict.V2ModelVersionMetadataApi.as_view(),
        name="v2-model-version-metadata",
    ),
    path(
        "v2/models/<slug:name>/versions/<str:version>/ready",
        api_predict.V2ModelVersionReadyApi.as_view(),
        name="v2-model-version-ready",
    ),
    path(
        "v2/models/<slug:name>/versions/<str:version>/infer",
        api_predict.V2ModelVersionInferApi.as_view(),
        name="v2-model-version-infer",
    ),
]
