"""Versions are numbered race-free per model, aliases move only through the service, and the API
lets analysts read while only ML Staff register and move aliases."""

import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.urls import reverse

from apps.registry.models import AliasEvent, ModelVersion
from apps.registry.services import model_alias_set
from apps.training.services.registration import model_version_create_from_run
from apps.training.models import TrainingRun


def _copies(run, count):
    """Further succeeded runs sharing the run's committed artifact (registration verifies it)."""
    copies = []
    for _ in range(count):
        clone = TrainingRun.objects.get(pk=run.pk)
        clone.pk = None
        clone.idempotency_key = None
        clone.save()
        copies.append(clone)
    return copies


def test_registering_the_same_run_twice_returns_the_same_version(version, trained_run):
    again = model_version_create_from_run(run=trained_run, name=version.registered_model.name)
    assert again.pk == version.pk and ModelVersion.objects.count() == 1


def test_only_a_succeeded_run_with_an_intact_artifact_can_be_registered(trained_run):
    queued = _copies(trained_run, 1)[0]
    TrainingRun.objects.filter(pk=queued.pk).update(status="failed")
    with pytest.raises(ValidationError, match="only a succeeded run"):
        model_version_create_from_run(run=queued, name="other")
    broken = _copies(trained_run, 1)[0]
    TrainingRun.objects.filter(pk=broken.pk).update(artifact_sha256="0" * 64)
    with pytest.raises(ValidationError, match="cannot be registered"):
        model_version_create_from_run(run=broken, name="other")
    assert not ModelVersion.objects.filter(registered_model__name="other").exists()


@pytest.mark.django_db(transaction=True)
def test_versions_registered_at_the_same_time_get_distinct_consecutive_numbers(trained_run):
    runs = _copies(trained_run, 6)
    barrier = threading.Barrier(len(runs))
    numbers, errors = [], []

    def register(run):
        try:
            barrier.wait()
            numbers.append(model_version_create_from_run(run=run, name="race").version)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=register, args=(run,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(numbers) == [1, 2, 3, 4, 5, 6]


def test_moving_an_alias_records_who_moved_it_from_where_to_where(trained_run, version, staff_user):
    model = version.registered_model
    second = model_version_create_from_run(run=_copies(trained_run, 1)[0], name=model.name)
    model_alias_set(model=model, alias="champion", version=version, user=staff_user, reason="first")
    model_alias_set(model=model, alias="champion", version=second, user=staff_user, reason="better")
    model_alias_set(model=model, alias="champion", version=second, user=staff_user)  # no move, no event
    assert model.aliases.get(alias="champion").version == second
    events = list(AliasEvent.objects.filter(registered_model=model).order_by("id"))
    assert [(e.from_version, e.to_version, e.actor, e.reason) for e in events] == [
        (None, version, staff_user, "first"),
        (version, second, staff_user, "better"),
    ]
    model_alias_set(model=model, alias="champion", version=None, user=staff_user)
    assert not model.aliases.exists() and AliasEvent.objects.count() == 3


def test_bad_aliases_are_refused_naming_the_field(version, staff_user):
    model = version.registered_model
    for alias in ("Champion!", "latest", ""):
        with pytest.raises(ValidationError) as exc:
            model_alias_set(model=model, alias=alias, version=version, user=staff_user)
        assert "alias" in exc.value.message_dict


def test_analysts_read_models_and_versions(analyst_api, version):
    name = version.registered_model.name
    listing = analyst_api.get("/api/v1/models/").json()["results"]
    assert [(m["name"], m["latest_version"]) for m in listing] == [(name, 1)]
    detail = analyst_api.get(f"/api/v1/models/{name}/versions/1/").json()
    assert detail["artifact_sha256"] == version.artifact_sha256
    assert (
        detail["signature"]["history_rows"] == version.history_rows
        and detail["training_run"] == version.training_run_id
    )
    assert analyst_api.get(f"/api/v1/models/{name}/versions/7/").status_code == 404
    assert analyst_api.get("/api/v1/models/nope/").status_code == 404


def test_only_ml_staff_move_aliases_and_register_runs(
    staff_api, analyst_api, outsider_api, anon_api, version, trained_run
):
    name = version.registered_model.name
    url = f"/api/v1/models/{name}/aliases/"
    body = {"alias": "champion", "version": 1}
    assert anon_api.post(url, body, format="json").status_code == 401
    assert outsider_api.post(url, body, format="json").status_code == 403
    assert analyst_api.post(url, body, format="json").status_code == 403
    assert outsider_api.get("/api/v1/models/").status_code == 403

    response = staff_api.post(url, body, format="json")
    assert response.status_code == 200 and response.json()["aliases"] == {"champion": 1}
    assert response.json()["alias_events"][0]["actor"] == staff_api.user.username

    bad = staff_api.post(url, {"alias": "champion", "version": 9}, format="json")
    assert bad.status_code == 400 and "version" in bad.json()

    copy = _copies(trained_run, 1)[0]
    registered = staff_api.post(
        f"/api/v1/models/{name}/versions/", {"run": copy.pk, "tags": {"note": "api"}}, format="json"
    )
    assert registered.status_code == 201 and registered.json()["version"] == 2
    assert registered.json()["tags"]["note"] == "api"
    assert staff_api.post(f"/api/v1/models/{name}/versions/", {"run": 999999}, format="json").status_code == 400


def test_versions_are_compared_side_by_side_in_admin(analyst_user, staff_user, trained_run, version):
    second = model_version_create_from_run(run=_copies(trained_run, 1)[0], name=version.registered_model.name)
    url = reverse("admin:registry_modelversion_changelist")
    client = Client()
    client.force_login(analyst_user)
    page = client.post(url, {"action": "compare_versions", "_selected_action": [version.pk, second.pk]})
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="version-compare"' in html and "accuracy" in html and str(version.dataset_version) in html
    # Analysts cannot move aliases from the admin either.
    client.post(url, {"action": "make_champion", "_selected_action": [version.pk]})
    assert not version.registered_model.aliases.exists()
    client.force_login(staff_user)
    client.post(url, {"action": "make_champion", "_selected_action": [version.pk]})
    assert version.registered_model.aliases.get().version == version
