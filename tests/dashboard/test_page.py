"""The dashboard page: behind the portal login, refused to users without a role, built assets wired in."""

import json

import pytest
from django.test import Client

pytestmark = pytest.mark.usefixtures("built_frontend")


def _client(user=None):
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.mark.parametrize("path", ["/", "/dashboard/"])
def test_an_anonymous_visitor_is_sent_to_the_admin_login_and_back(db, path):
    response = _client().get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={path}"


@pytest.mark.parametrize("path", ["/", "/dashboard/"])
def test_a_user_without_a_portal_role_gets_a_403_page_that_says_why(outsider_user, path):
    response = _client(outsider_user).get(path)
    assert response.status_code == 403
    body = response.content.decode()
    assert "has no portal role" in body and "outsider" in body
    assert 'data-widget="dashboard"' not in body


@pytest.mark.parametrize("who", ["staff_user", "analyst_user"])
def test_staff_and_analysts_get_the_page_with_the_built_script_and_styles(request, who, built_frontend):
    manifest = json.loads(built_frontend.read_text())
    entry = manifest["src/main.jsx"]
    response = _client(request.getfixturevalue(who)).get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-widget="dashboard"' in body
    assert f'<script type="module" src="/static/{entry["file"]}"></script>' in body
    for sheet in entry.get("css", []):
        assert f'<link rel="stylesheet" href="/static/{sheet}">' in body
    for chunk in entry.get("imports", []):
        assert f'<link rel="modulepreload" href="/static/{manifest[chunk]["file"]}">' in body
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in body


def test_the_page_sets_the_csrf_cookie_the_staff_actions_post_with(staff_user):
    response = _client(staff_user).get("/dashboard/")
    assert "csrftoken" in response.cookies


def test_the_scripts_the_page_names_are_served(staff_user, built_frontend):
    manifest = json.loads(built_frontend.read_text())
    client = _client(staff_user)
    for chunk in manifest.values():
        response = client.get(f"/static/{chunk['file']}")
        assert response.status_code == 200, chunk["file"]
        assert b"".join(response.streaming_content if response.streaming else [response.content])


def test_the_page_says_the_frontend_is_missing_instead_of_staying_blank(staff_user, settings, tmp_path):
    settings.FRONTEND_DIST = tmp_path
    response = _client(staff_user).get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'role="alert"' in body and "make frontend" in body
