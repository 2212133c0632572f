from importlib import import_module

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from apps.core import views as core_views

urlpatterns = [
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("api/v1/", include("apps.core.urls")),
]

# Each domain app contributes its own routes when it has a urls.py.
for _app in ("datasets", "training", "registry", "tuning", "deployments", "dashboard", "delivery", "alerts"):
    try:
        module = import_module(f"apps.{_app}.urls")
    except ModuleNotFoundError as exc:
        if exc.name != f"apps.{_app}.urls":
            raise
        continue
    urlpatterns += module.urlpatterns
