"""WebSocket routes, gathered from the apps that have consumers."""

from importlib import import_module

websocket_urlpatterns = []
for _app in ("training", "deployments", "monitoring", "dashboard", "tuning"):
    try:
        module = import_module(f"apps.{_app}.routing")
    except ModuleNotFoundError as exc:
        if exc.name != f"apps.{_app}.routing":
            raise
        continue
    websocket_urlpatterns += module.websocket_urlpatterns
