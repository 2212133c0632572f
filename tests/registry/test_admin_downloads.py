"""The version page's artifact download: ML Staff only, streamed, and the MANIFEST.json inside hashes
to the sha256 the registry recorded."""

import hashlib
import io
import json
import zipfile

from django.test import Client
from django.urls import reverse


def _client(user):
    client = Client()
    client.force_login(user)
    return client


def test_staff_download_the_artifact_as_a_streamed_zip_whose_manifest_matches_the_recorded_sha256(staff_user, version):
    client = _client(staff_user)
    page = client.get(reverse("admin:registry_modelversion_change", args=[version.pk])).content.decode()
    url = reverse("admin:registry_modelversion_artifact", args=[version.pk])
    assert f'href="{url}"' in page
    response = client.get(url)
    assert response.status_code == 200 and response.streaming
    assert response["X-Artifact-SHA256"] == version.artifact_sha256
    assert f'filename="{version.registered_model.name}-v{version.version}.zip"' in response["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    manifest_raw = archive.read("MANIFEST.json")
    assert hashlib.sha256(manifest_raw).hexdigest() == version.artifact_sha256
    files = json.loads(manifest_raw)["files"]
    assert set(archive.namelist()) == {"MANIFEST.json", *files}
    for name, entry in files.items():
        assert hashlib.sha256(archive.read(name)).hexdigest() == entry["sha256"], name


def test_analysts_are_not_offered_the_download_and_are_refused_it(analyst_user, version):
    client = _client(analyst_user)
    url = reverse("admin:registry_modelversion_artifact", args=[version.pk])
    page = client.get(reverse("admin:registry_modelversion_change", args=[version.pk])).content.decode()
    assert url not in page
    response = client.get(url)
    assert response.status_code == 403 and b"Only ML Staff" in response.content


def test_a_tampered_artifact_is_not_served(staff_user, version):
    from apps.registry.storage import artifact_storage

    storage = artifact_storage()
    name = f"{version.artifact_uri}/MANIFEST.json"
    with storage.open(name, "rb") as fh:
        raw = fh.read()
    with open(storage.path(name), "wb") as fh:
        fh.write(raw.replace(b'"format"', b'"formaT"'))
    response = _client(staff_user).get(reverse("admin:registry_modelversion_artifact", args=[version.pk]), follow=True)
    assert response.status_code == 200 and b"cannot download" in response.content and b"sha256" in response.content
