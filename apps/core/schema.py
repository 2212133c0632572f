"""OpenAPI description of the portal's token authentication and of its error answers.

`PortalAutoSchema` (REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]) documents, on every operation, the error
statuses it can answer and their bodies, so a view declares only what is particular to it:

- 400 on every operation (a NUL in any path or query is refused by HostileInputMiddleware); its body
  is a field dict (`ValidationError`: each key a field, its value the messages) or `{"detail"}`
  (`Error`: malformed or too deep JSON, a refused query, ...). A view's own 400 body (the prediction
  errors, a spec error) is added beside them.
- 401 and 403 where the view needs a user or a role; 404 where the path has parameters (and for any
  path no route matches); 406 for an Accept header it cannot answer; 413 and 415 where a body is
  read; 429 where the view is throttled.
- 409 and 503 only where a view declares them: they come from its own state checks.

Operations of /v2 answer every error as `{"error": "..."}` (`V2Error`, Open Inference Protocol).
A status a view declares keeps the view's body.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.settings import api_settings

from .middleware import is_v2_path


@extend_schema_serializer(component_name="Error")
class ErrorSerializer(serializers.Serializer):
    """A refusal that is not about one field's value."""

    detail = serializers.CharField()
    field = serializers.CharField(
        required=False,
        help_text="The part of the request at fault, when there is one: `path`, `query`, `body` or a field.",
    )


@extend_schema_serializer(component_name="V2Error")
class V2ErrorSerializer(serializers.Serializer):
    """Open Inference Protocol error."""

    error = serializers.CharField()


VALIDATION_ERROR_SCHEMA = {
    "type": "object",
    "description": "Invalid fields: each key names a field (`non_field_errors` for the whole body), its value "
    "the messages, as a list of strings, or nested the same way for a nested field.",
    "additionalProperties": {
        "anyOf": [
            {"type": "string"},
            {"type": "array", "items": {}},
            {"type": "object"},
        ],
    },
}

DESCRIPTIONS = {
    "400": "Invalid request: the fields at fault, or what is wrong with the body, path or query.",
    "401": "No credentials, or credentials that are malformed, unknown, revoked or expired.",
    "403": "Authenticated, but the account's role may not do this.",
    "404": "No such object, or no operation at this path.",
    "406": "The Accept header names no media type this operation answers (it answers application/json).",
    "409": "The object's state does not allow this now.",
    "413": "The request body is larger than the server accepts.",
    "415": "The body's Content-Type is not one this operation reads.",
    "429": "Too many requests from this client; retry after the Retry-After seconds.",
    "503": "Not available now (a dependency or the model cannot serve).",
}


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "apps.core.authentication.ApiTokenAuthentication"
    name = "ApiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "mlp_<id>_<secret> (python manage.py create_api_token USERNAME)",
        }


class PortalAutoSchema(AutoSchema):
    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is not None:
            self._add_error_responses(operation)
        return operation

    def _component(self, name: str, schema: dict) -> dict:
        component = ResolvedComponent(name=name, type=ResolvedComponent.SCHEMA, schema=schema, object=name)
        self.registry.register_on_missing(component)
        return component.ref

    def _error_statuses(self, operation: dict) -> list[str]:
        statuses = ["400"]
        if not all(isinstance(permission, AllowAny) for permission in self.view.get_permissions()):
            statuses += ["401", "403"]
        if any(p.get("in") == "path" for p in operation.get("parameters", [])):
            statuses.append("404")
        statuses.append("406")
        if "requestBody" in operation:
            statuses += ["413", "415"]
        throttles = getattr(self.view, "throttle_classes", None) or api_settings.DEFAULT_THROTTLE_CLASSES
        if throttles:
            statuses.append("429")
        return statuses

    def _add_error_responses(self, operation: dict) -> None:
        responses = operation["responses"]
        if is_v2_path(self.path):
            shapes = [self.resolve_serializer(V2ErrorSerializer(), "response").ref]
        else:
            shapes = [
                self._component("ValidationError", VALIDATION_ERROR_SCHEMA),
                self.resolve_serializer(ErrorSerializer(), "response").ref,
            ]
        default_error = shapes[-1]
        for status in self._error_statuses(operation):
            declared = responses.get(status)
            if declared is None:
                schema = {"anyOf": shapes} if status == "400" and len(shapes) > 1 else default_error
                responses[status] = {
                    "description": DESCRIPTIONS[status],
                    "content": {"application/json": {"schema": schema}},
                }
                if status == "401":
                    responses[status]["headers"] = {
                        "WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}
                    }
                continue
            if not declared.get("description"):
                declared["description"] = DESCRIPTIONS[status]
            if status == "400":
                # The view's own 400 body, and what the middleware and parsers refuse before it runs.
                content = declared.setdefault("content", {}).setdefault("application/json", {})
                own = content.get("schema")
                content["schema"] = {"anyOf": ([own] if own else []) + [s for s in shapes if s != own]}
        for status, declared in responses.items():
            if not declared.get("description"):
                declared["description"] = DESCRIPTIONS.get(status, "")
