from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ParseError, ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import StateConflict
from .parsers import RequestTooLarge
from .roles import role_of


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The object's state does not allow this now."
    default_code = "conflict"


def exception_handler(exc, context):
    """DRF's handler, plus: a StateConflict from a service is a 409 (here and nowhere else), other
    Django ValidationErrors from services 400s naming the field, and the limits Django enforces while
    reading a body (DATA_UPLOAD_MAX_MEMORY_SIZE / _NUMBER_FIELDS / _NUMBER_FILES) answered in JSON:
    left to Django they are an HTML 400 page."""
    if isinstance(exc, StateConflict):
        response = drf_exception_handler(Conflict(detail=str(exc)), context)
        if hasattr(exc, "error_dict") and len(exc.error_dict) == 1:
            response.data["field"] = next(iter(exc.error_dict))
        return response
    elif isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        exc = ValidationError(detail=detail)
    elif isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge()
    elif isinstance(exc, (TooManyFieldsSent, TooManyFilesSent)):
        exc = ParseError(f"body: {exc}")
    return drf_exception_handler(exc, context)


class Pagination(LimitOffsetPagination):
    """`?limit=&offset=` pages of every list (50 by default, at most 500).

    DRF's own quietly serves the default page for `limit=abc`; here a limit or offset that is not an
    integer in range is a 400 naming it, as the schema documents (a limit over 500 is served as 500).
    """

    default_limit = 50
    max_limit = 500

    def _integer(self, request, name: str, minimum: int) -> int | None:
        raw = request.query_params.get(name)
        if raw is None:
            return None
        # isdigit alone takes "²", which int() refuses.
        if not (raw.isascii() and raw.isdigit()) or int(raw) < minimum:
            raise ValidationError({name: [f"must be an integer of at least {minimum}, got {raw[:40]!r}."]})
        return int(raw)

    def get_limit(self, request):
        limit = self._integer(request, self.limit_query_param, 1)
        return self.default_limit if limit is None else min(limit, self.max_limit)

    def get_offset(self, request):
        return self._integer(request, self.offset_query_param, 0) or 0

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            minimum = 1 if parameter["name"] == self.limit_query_param else 0
            parameter["schema"] = {**parameter["schema"], "minimum": minimum}
        return parameters


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
