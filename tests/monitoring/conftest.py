"""The monitoring tests serve real predictions, so they reuse the deployment fixtures."""

from tests.deployments.conftest import (  # noqa: F401  (fixtures)
    _fresh_serving_state,
    challenger,
    champion,
    deployment,
    make_version,
    two_versions,
)
