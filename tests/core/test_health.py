import pytest
from django.test import override_settings


def test_healthz_answers_while_the_process_lives(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.worker
def test_readyz_is_ok_when_database_redis_and_a_worker_answer(client, celery_worker):
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"] == {"database": "ok", "redis": "ok", "worker": "ok"}


@pytest.mark.django_db
def test_readyz_names_a_down_redis(client):
    # Nothing listens on port 1: Redis is down from the portal's point of view.
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["redis", "worker"]
    assert "cannot reach Redis" in body["checks"]["redis"]
    assert body["checks"]["database"] == "ok"
