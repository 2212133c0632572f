import pytest

pytestmark = pytest.mark.worker


def test_a_task_runs_on_the_real_worker(celery_worker):
    from apps.core.tasks import ping

    result = ping.delay("hello").get(timeout=30)
    assert result["value"] == "hello"
    import os

    assert result["pid"] != os.getpid()
