import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from apps.core.models import ApiToken

pytestmark = pytest.mark.django_db


def test_create_api_token_prints_a_token_that_authenticates(staff_user):
    out = io.StringIO()
    call_command("create_api_token", staff_user.username, stdout=out)
    raw = out.getvalue().strip()
    assert raw.startswith("mlp_")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = client.get("/api/v1/me")
    assert response.status_code == 200
    assert response.json() == {"username": staff_user.username, "role": "ML Staff", "can_act": True}


def test_tokens_are_stored_hashed(staff_user):
    out = io.StringIO()
    call_command("create_api_token", staff_user.username, stdout=out)
    raw = out.getvalue().strip()
    stored = ApiToken.objects.get(user=staff_user)
    assert raw not in (stored.token_hash, stored.key_id)
    assert len(stored.token_hash) == 64


def test_an_expired_token_is_refused(staff_api):
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = staff_api.get("/api/v1/me")
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_a_forged_token_is_refused(staff_api):
    token = ApiToken.objects.get()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer mlp_{token.key_id}_forged")
    assert client.get("/api/v1/me").status_code == 401


def test_create_api_token_names_an_unknown_user():
    with pytest.raises(Exception, match="No user named 'ghost'"):
        call_command("create_api_token", "ghost")


def test_anonymous_clients_get_401(anon_api):
    assert anon_api.get("/api/v1/me").status_code in (401, 403)


def test_a_user_without_a_role_is_refused(outsider_api):
    response = outsider_api.get("/api/v1/me")
    assert response.status_code == 403
    assert "no portal role" in response.json()["detail"]


def test_an_analyst_reads_but_is_told_apart_from_staff(analyst_api):
    response = analyst_api.get("/api/v1/me")
    assert response.json() == {"username": "analyst1", "role": "Analyst", "can_act": False}


def test_role_groups_carry_view_only_for_analysts():
    from django.contrib.auth.models import Group

    analyst_perms = set(Group.objects.get(name="Analyst").permissions.values_list("codename", flat=True))
    staff_perms = set(Group.objects.get(name="ML Staff").permissions.values_list("codename", flat=True))
    assert analyst_perms and all(code.startswith("view_") for code in analyst_perms)
    assert staff_perms > analyst_perms
    # Beat's tables are read-only for ML Staff: a periodic task may name any Celery task.
    assert "view_periodictask" in staff_perms
    assert not {"add_periodictask", "change_periodictask", "delete_periodictask"} & staff_perms


def test_ml_staff_cannot_create_an_arbitrary_periodic_task_in_admin(staff_user):
    from django.test import Client
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    client = Client()
    client.force_login(staff_user)
    every = IntervalSchedule.objects.create(every=10, period="seconds")
    response = client.post(
        "/admin/django_celery_beat/periodictask/add/",
        {
            "name": "sneaky",
            "task": "celery.backend_cleanup",
            "interval": every.pk,
            "enabled": "on",
            "args": "[]",
            "kwargs": "{}",
        },
    )
    assert response.status_code == 403 and not PeriodicTask.objects.filter(name="sneaky").exists()
    assert client.get("/admin/django_celery_beat/periodictask/").status_code == 200
