"""The prediction fast path skips Django's middleware, never its guards."""

import json

import pytest
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator
from django.test import override_settings

from apps.core.services import api_token_create

pytestmark = pytest.mark.django_db(transaction=True)


def post_predict(token: str, host: bytes = b"testserver", extra_headers=()):
    from mlops_portal.asgi import application

    headers = [
        (b"host", host),
        (b"authorization", f"Bearer {token}".encode()),
        (b"content-type", b"application/json"),
        *extra_headers,
    ]
    body = json.dumps({"instances": [[1.0]]}).encode()
    communicator = HttpCommunicator(
        application, "POST", "/api/v1/deployments/no-such-model/predict", body=body, headers=headers
    )
    return async_to_sync(communicator.get_response)(timeout=10)


@pytest.fixture
def token(staff_user):
    return api_token_create(user=staff_user, name="guards")[1]


def test_a_good_host_is_answered_by_the_fast_path(token):
    response = post_predict(token)
    assert response["status"] == 404
    assert "no-such-model" in response["body"].decode()


def test_a_host_outside_allowed_hosts_is_refused_as_django_would(token):
    response = post_predict(token, host=b"evil.example")
    assert response["status"] == 400
    assert b"no-such-model" not in response["body"]


@override_settings(SECURE_SSL_REDIRECT=True, SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"))
def test_plain_http_is_left_to_django_to_redirect_when_production_asks_for_https():
    # SecurityMiddleware reads its settings when the handler loads, so the guard is checked directly.
    from apps.deployments.serving.fastpath import _django_would_serve

    plain = {b"host": b"testserver"}
    assert not _django_would_serve({"scheme": "http"}, plain)
    assert _django_would_serve({"scheme": "https"}, plain)
    assert _django_would_serve({"scheme": "http"}, plain | {b"x-forwarded-proto": b"https"})
