from django.urls import path

from . import api

urlpatterns = [
    path("api/v1/delivery/policies/", api.DeliveryPolicyListApi.as_view(), name="api-delivery-policies"),
    path("api/v1/delivery/policies/<str:name>/", api.DeliveryPolicyApi.as_view(), name="api-delivery-policy"),
    path("api/v1/delivery/evaluations/", api.CandidateEvaluationListApi.as_view(), name="api-delivery-evaluations"),
    path(
        "api/v1/delivery/evaluations/<int:pk>/",
        api.CandidateEvaluationDetailApi.as_view(),
        name="api-delivery-evaluation",
    ),
    path(
        "api/v1/delivery/deployments/<str:name>/timeline",
        api.DeliveryTimelineApi.as_view(),
        name="api-delivery-timeline",
    ),
    path("api/v1/delivery/schedules/<int:pk>/tick", api.ScheduleTickApi.as_view(), name="api-delivery-schedule-tick"),
]
