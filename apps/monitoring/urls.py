from django.urls import path

from . import api

urlpatterns = [
    path("api/v1/monitoring/deployments/<slug:name>/series", api.DeploymentSeriesApi.as_view(), name="monitoring-series"),
    path("api/v1/monitoring/deployments/<slug:name>/summary", api.DeploymentSummaryApi.as_view(), name="monitoring-summary"),
    path("metrics", api.metrics_view, name="metrics"),
]
