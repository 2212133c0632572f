from django.urls import path

from .consumers import RunLogConsumer, RunsConsumer

websocket_urlpatterns = [
    path("ws/training/runs/<int:run_id>/", RunLogConsumer.as_asgi()),
    path("ws/training/runs/", RunsConsumer.as_asgi()),
]
