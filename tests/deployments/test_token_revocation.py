"""A revoked token stops predicting: at once on the process that saved the change, within
DEPLOYMENTS_AUTH_CACHE_MS on every other one (their change reaches this one only through the database)."""

import time

import pytest

from apps.core.models import ApiToken
from apps.core.services import api_token_create
from apps.deployments.serving.fastpath import PredictionFastPath
from apps.deployments.services.model_deployment_service import deployment_create

from .conftest import record
from .test_fast_path import PREDICT, call

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def app():
    from django.core.asgi import get_asgi_application

    return PredictionFastPath(get_asgi_application())


@pytest.fixture
def token(make_version, staff_user, analyst_user):
    deployment_create(name="price-direction", model_version=make_version(seed=0), user=staff_user)
    row, raw = api_token_create(user=analyst_user, name="revocable")
    return row, raw


def _body():
    return {"instances": [record()]}


def test_a_token_revoked_on_this_process_is_refused_on_the_next_prediction(app, token, settings):
    settings.DEPLOYMENTS_AUTH_CACHE_MS = 60_000
    row, raw = token
    assert call(app, PREDICT, _body(), raw)[0] == 200
    row.revoked = True
    row.save()
    status, body, _ = call(app, PREDICT, _body(), raw)
    assert status == 401 and "revoked" in body["detail"]


def test_a_token_revoked_elsewhere_is_refused_once_the_cache_bound_has_passed(app, token, settings):
    settings.DEPLOYMENTS_AUTH_CACHE_MS = 300
    row, raw = token
    assert call(app, PREDICT, _body(), raw)[0] == 200
    ApiToken.objects.filter(pk=row.pk).update(revoked=True)  # another process's save: no signal here
    time.sleep(0.35)
    status, body, _ = call(app, PREDICT, _body(), raw)
    assert status == 401 and "revoked" in body["detail"]


def test_a_user_removed_from_their_role_is_refused_on_the_next_prediction(app, token, settings, analyst_user):
    settings.DEPLOYMENTS_AUTH_CACHE_MS = 60_000
    _, raw = token
    assert call(app, PREDICT, _body(), raw)[0] == 200
    analyst_user.groups.clear()
    assert call(app, PREDICT, _body(), raw)[0] == 403
