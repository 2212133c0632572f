from django.urls import path

from .consumers import DeploymentsConsumer

websocket_urlpatterns = [path("ws/deployments/", DeploymentsConsumer.as_asgi())]
