"""HTTP through Django, WebSockets through Channels with session authentication."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlops_portal.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from apps.core.bodylimit import BodyLimitMiddleware  # noqa: E402
from apps.core.websocket import SameOriginValidator  # noqa: E402
from apps.deployments.serving.fastpath import PredictionFastPath  # noqa: E402
from apps.monitoring.services.logbuffer import prediction_logs_lifespan  # noqa: E402

from .routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        # Bodies over their endpoint's limit are refused before they are read (apps/core/bodylimit.py).
        # Token-authenticated POSTs to the two prediction endpoints are served (and batched) without
        # Django's request machinery; everything else goes to Django unchanged.
        "http": BodyLimitMiddleware(PredictionFastPath(django_asgi_app)),
        # Same origin (scheme, host, port) or CSRF_TRUSTED_ORIGINS only: apps/core/websocket.py.
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
        # Shutdown (uvicorn): the prediction-log writer stores what is left before the process exits.
        "lifespan": prediction_logs_lifespan,
    }
)
