from django.urls import path

from . import api

urlpatterns = [
    path("api/v1/datasets/", api.DatasetListApi.as_view(), name="api-datasets"),
    path("api/v1/datasets/<int:pk>/", api.DatasetDetailApi.as_view(), name="api-dataset"),
    path("api/v1/datasets/<int:pk>/versions/", api.DatasetVersionListApi.as_view(), name="api-dataset-versions"),
    path(
        "api/v1/datasets/<int:pk>/versions/<int:version>/",
        api.DatasetVersionDetailApi.as_view(),
        name="api-dataset-version",
    ),
    path(
        "api/v1/datasets/<int:pk>/versions/<int:version>/preview/",
        api.DatasetVersionPreviewApi.as_view(),
        name="api-dataset-version-preview",
    ),
    path("api/v1/feature-specs/", api.FeatureSpecListApi.as_view(), name="api-feature-specs"),
    path("api/v1/feature-specs/validate/", api.FeatureSpecValidateApi.as_view(), name="api-feature-spec-validate"),
    path("api/v1/feature-specs/preview/", api.FeaturePreviewApi.as_view(), name="api-feature-preview"),
    path("api/v1/feature-specs/<int:pk>/", api.FeatureSpecDetailApi.as_view(), name="api-feature-spec"),
]
