"""Registry retention: versions never deployed and older than REGISTRY_ARCHIVE_AFTER_DAYS are
archived by the housekeeping beat task: kept, hidden from the default version list, refused for
rollouts and traffic (a 400 naming the version), and un-archived by staff through the API."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.delivery.archiving import model_versions_archive_undeployed
from apps.delivery.tasks import archive_undeployed_versions
from apps.registry.models import ModelVersion
from apps.registry.services import model_alias_set

VERSIONS = "/api/v1/models/price-direction/versions/"


@pytest.fixture
def old_versions(deployment, champion, challenger, make_version):
    """The deployed champion, a challenger never deployed, and a third under an alias: all 100 days old."""
    aliased = make_version(seed=2)
    model_alias_set(model=aliased.registered_model, alias="candidate", version=aliased, reason="kept on purpose")
    ModelVersion.objects.filter(pk__in=[champion.pk, challenger.pk, aliased.pk]).update(
        created_at=timezone.now() - timedelta(days=100)
    )
    return {"champion": champion, "challenger": challenger, "aliased": aliased}


def _archived(*versions):
    return [ModelVersion.objects.get(pk=v.pk).archived_at is not None for v in versions]


def test_only_versions_never_deployed_past_retention_are_archived_and_zero_turns_it_off(old_versions, settings):
    champion, challenger, aliased = old_versions["champion"], old_versions["challenger"], old_versions["aliased"]
    settings.REGISTRY_ARCHIVE_AFTER_DAYS = 0
    assert archive_undeployed_versions() == {"archived": 0}
    settings.REGISTRY_ARCHIVE_AFTER_DAYS = 120
    assert archive_undeployed_versions() == {"archived": 0}  # not old enough yet
    assert _archived(champion, challenger, aliased) == [False, False, False]

    settings.REGISTRY_ARCHIVE_AFTER_DAYS = 90
    assert archive_undeployed_versions() == {"archived": 1}
    assert _archived(champion, challenger, aliased) == [False, True, False]
    assert model_versions_archive_undeployed() == {"archived": 0}  # idempotent


def test_archived_versions_are_hidden_refused_for_rollouts_and_traffic_and_staff_un_archive_them(
    old_versions, settings, staff_api, analyst_api
):
    challenger = old_versions["challenger"]
    settings.REGISTRY_ARCHIVE_AFTER_DAYS = 90
    assert archive_undeployed_versions() == {"archived": 1}

    listed = analyst_api.get(VERSIONS).json()["results"]
    assert challenger.version not in [v["version"] for v in listed] and all(v["archived_at"] is None for v in listed)
    archived = analyst_api.get(VERSIONS, {"archived": "true"}).json()["results"]
    assert [v["version"] for v in archived] == [challenger.version] and archived[0]["archived_at"]
    bad = analyst_api.get(VERSIONS, {"archived": "maybe"})
    assert bad.status_code == 400 and "archived" in bad.json()
    assert analyst_api.get(f"{VERSIONS}{challenger.version}/").json()["archived_at"]  # still there by number

    refused = staff_api.post(
        "/api/v1/deployments/price-direction/rollouts", {"challenger_version_id": challenger.pk}, format="json"
    )
    assert refused.status_code == 400, refused.content
    assert str(challenger) in refused.json()["challenger"][0] and "archived" in refused.json()["challenger"][0]
    traffic = staff_api.post(
        "/api/v1/deployments/price-direction/traffic",
        {
            "traffic": [
                {"model_version_id": old_versions["champion"].pk, "weight": 90},
                {"model_version_id": challenger.pk, "weight": 10},
            ]
        },
        format="json",
    )
    assert traffic.status_code == 400 and "archived" in traffic.json()["traffic[1].model_version"][0], traffic.content

    url = f"{VERSIONS}{challenger.version}/"
    assert analyst_api.patch(url, {"archived": False}, format="json").status_code == 403
    by_hand = staff_api.patch(url, {"archived": True}, format="json")
    assert by_hand.status_code == 400 and "archived" in by_hand.json()
    restored = staff_api.patch(url, {"archived": False}, format="json")
    assert restored.status_code == 200 and restored.json()["archived_at"] is None
    started = staff_api.post(
        "/api/v1/deployments/price-direction/rollouts", {"challenger_version_id": challenger.pk}, format="json"
    )
    assert started.status_code == 201, started.content
    # Now it was deployed (a rollout's challenger): the sweep leaves it alone for good.
    assert archive_undeployed_versions() == {"archived": 0}
