from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from .selectors import dashboard_summary
from .serializers import DashboardSummarySerializer


class DashboardSummaryApi(APIView):
    @extend_schema(
        responses=DashboardSummarySerializer,
        summary="What the dashboard shows on load",
        description="Active deployments (versions, weights, rollout stage, gates, last events), queued and "
        "running training runs, recent runs and running tuning studies. Changes are then pushed on ws/dashboard/.",
    )
    def get(self, request):
        # The selector builds JSON-ready data already; the serializer documents it for the schema.
        return Response(dashboard_summary())
