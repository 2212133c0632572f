from django.urls import path

from .api import DashboardSummaryApi
from .views import dashboard_page

urlpatterns = [
    path("", dashboard_page, name="dashboard"),
    path("dashboard/", dashboard_page, name="dashboard-page"),
    path("api/v1/dashboard/summary", DashboardSummaryApi.as_view(), name="api-dashboard-summary"),
]
