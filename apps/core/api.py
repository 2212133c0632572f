from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from .roles import role_of


def exception_handler(exc, context):
    """DRF's handler, plus Django ValidationErrors from services turned into 400s naming the field."""
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        exc = ValidationError(detail=detail)
    return drf_exception_handler(exc, context)


class MeApi(APIView):
    class OutputSerializer(serializers.Serializer):
        username = serializers.CharField()
        role = serializers.CharField(allow_null=True)
        can_act = serializers.BooleanField()

    @extend_schema(responses=OutputSerializer, summary="Who am I and what may I do")
    def get(self, request):
        role = role_of(request.user)
        data = {"username": request.user.get_username(), "role": role, "can_act": role == "ML Staff"}
        return Response(self.OutputSerializer(data).data)
