from django.urls import path

from . import api

urlpatterns = [
    path("api/v1/models/", api.ModelListApi.as_view(), name="api-models"),
    path("api/v1/models/<str:name>/", api.ModelDetailApi.as_view(), name="api-model"),
    path("api/v1/models/<str:name>/versions/", api.ModelVersionListApi.as_view(), name="api-model-versions"),
    path("api/v1/models/<str:name>/versions/<int:version>/", api.ModelVersionDetailApi.as_view(),
         name="api-model-version"),
    path("api/v1/models/<str:name>/aliases/", api.ModelAliasApi.as_view(), name="api-model-aliases"),
]
