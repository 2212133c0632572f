from django.urls import path

from . import api

urlpatterns = [
    path("api/v1/alerts/rules/", api.AlertRuleListApi.as_view(), name="api-alert-rules"),
    path("api/v1/alerts/rules/<int:pk>/", api.AlertRuleApi.as_view(), name="api-alert-rule"),
    path("api/v1/alerts/webhooks/", api.WebhookListApi.as_view(), name="api-alert-webhooks"),
    path("api/v1/alerts/webhooks/<int:pk>/", api.WebhookApi.as_view(), name="api-alert-webhook"),
    path("api/v1/alerts/events/", api.AlertEventListApi.as_view(), name="api-alert-events"),
]
