"""OpenAPI description of the prediction endpoints' token authentication.

The same `mlp_...` tokens as everywhere; a separate scheme name only because the prediction
endpoints use a caching subclass and spectacular ties a scheme name to one class."""

from apps.core.schema import ApiTokenScheme


class CachedApiTokenScheme(ApiTokenScheme):
    target_class = "apps.deployments.auth.CachedApiTokenAuthentication"
    name = "PredictionApiToken"

    def get_security_definition(self, auto_schema):
        definition = super().get_security_definition(auto_schema)
        return {
            **definition,
            "description": "The portal's API token (same as ApiToken); verified tokens are "
            "cached per process for a few seconds on the prediction path.",
        }
