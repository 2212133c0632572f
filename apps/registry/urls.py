from django.urls import path

from . import api

urlpatterns = [
    path("api/v1/models/", api.ModelListApi.as_view(), name="api-models"),
    path("api/v1/models/<str:name>/", api.ModelDetailApi.as_view(), name="api-model"),
    # api/v1/models/<name>/versions/ (list, and register a run) is in apps/training/urls.py.
    path(
        "api/v1/models/<str:name>/versions/<int:version>/",
        api.ModelVersionDetailApi.as_view(),
        name="api-model-version",
    ),
    path("api/v1/models/<str:name>/aliases/", api.ModelAliasApi.as_view(), name="api-model-aliases"),
]
