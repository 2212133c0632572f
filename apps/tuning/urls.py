from django.urls import path

from . import api

urlpatterns = [
    path("api/v1/studies/", api.StudyListApi.as_view(), name="api-studies"),
    path("api/v1/studies/<int:pk>/", api.StudyDetailApi.as_view(), name="api-study"),
    *[
        path(f"api/v1/studies/<int:pk>/{verb}", api.StudyActionApi.as_view(verb=verb), name=f"api-study-{verb}")
        for verb in ("start", "pause", "resume", "stop")
    ],
    path("api/v1/studies/<int:pk>/trials", api.StudyTrialsApi.as_view(), name="api-study-trials"),
    path("api/v1/studies/<int:pk>/history", api.StudyHistoryApi.as_view(), name="api-study-history"),
    path("api/v1/studies/<int:pk>/importances", api.StudyImportancesApi.as_view(), name="api-study-importances"),
    path(
        "api/v1/studies/<int:pk>/parallel-coordinates",
        api.StudyParallelCoordinatesApi.as_view(),
        name="api-study-parallel-coordinates",
    ),
]
