"""The admin as the staff cockpit: branded, ordered by the workflow, readable badges, a styled 403,
and API docs that need no outside host."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from apps.core.admin_display import BADGE_TONES, json_block, rounded, validation_error_text

CSS = Path(__file__).resolve().parents[2] / "apps" / "core" / "static" / "portal" / "admin.css"


def _client(user):
    client = Client()
    client.force_login(user)
    return client


def test_the_index_is_branded_and_ordered_by_the_workflow_with_celery_under_system(staff_user):
    html = _client(staff_user).get("/admin/").content.decode()
    assert "MLOps portal" in html and "Django administration" not in html
    captions = re.findall(r'<caption>\s*<a [^>]*class="section"[^>]*>([^<]+)</a>', html)
    assert captions == ["Data", "Training", "Tuning", "Registry", "Deployments", "Monitoring", "System"]
    system = html[html.index(">System</a>") :]
    assert "Periodic tasks" in system and "Solar events" in system
    training = html[html.index(">Training</a>") : html.index(">Tuning</a>")]
    assert training.index("Experiments") < training.index("Training runs") < training.index("Training schedules")


def test_every_status_badge_fill_is_at_least_4_5_to_1_against_its_white_text():
    def luminance(hex_color):
        channels = [int(hex_color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    fills = dict(re.findall(r"\.portal-badge--(\w+) \{ background: (#[0-9a-f]{6}); \}", CSS.read_text()))
    assert set(BADGE_TONES.values()) <= set(fills), "every tone a status can take has a fill"
    for tone, fill in fills.items():
        ratio = (1.0 + 0.05) / (luminance(fill) + 0.05)
        assert ratio >= 4.5, f"{tone} {fill} is only {ratio:.2f}:1"


def test_metrics_are_rounded_and_json_is_shown_formatted_and_collapsible():
    assert rounded({"val": {"rmse": 0.123456789, "n": 3, "ok": True}}) == {"val": {"rmse": 0.1235, "n": 3, "ok": True}}
    block = str(json_block({f"k{i}": i for i in range(20)}))
    assert (
        block.startswith('<details class="portal-json">') and "20 keys" in block and "\n  &quot;k0&quot;: 0," in block
    )
    assert " open" in str(json_block({"a": 1}))  # small values are shown open
    assert json_block({}) == "—"


def test_a_service_error_names_its_field_once():
    from django.core.exceptions import ValidationError

    text = validation_error_text(ValidationError({"model_type": "model_type: unknown model type 'x'"}))
    assert text == "model_type: unknown model type 'x'"


def test_an_analyst_posting_a_staff_action_gets_the_styled_page_saying_why(analyst_user):
    response = _client(analyst_user).post(
        "/admin/training/experiment/", {"action": "train_now", "_selected_action": ["1"]}
    )
    assert response.status_code == 403
    html = response.content.decode()
    assert '<a href="/admin/">MLOps portal</a>' in html and "Django administration" not in html
    assert "Not allowed" in html and "Only ML Staff may do this" in html
    assert "analyst1" in html and 'href="/static/admin/css/base.css"' in html.replace("'", '"')


def test_api_docs_reference_no_outside_host_and_their_assets_are_served(analyst_user):
    client = _client(analyst_user)
    for path in ("/api/docs/", "/api/redoc/"):
        html = client.get(path).content.decode()
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert assets, path
        outside = [a for a in assets if re.match(r"^(https?:)?//", a)]
        assert outside == [], f"{path} loads {outside}"
        for asset in assets:
            assert asset.startswith(settings.STATIC_URL), asset
            response = client.get(asset)
            assert response.status_code == 200, asset
            body = b"".join(response.streaming_content) if response.streaming else response.content
            assert len(body) > 100, asset


@pytest.mark.parametrize(
    "path",
    [
        "/admin/training/trainingrun/",
        "/admin/registry/modelversion/",
        "/admin/deployments/rollout/",
        "/admin/tuning/tuningstudy/",
    ],
)
def test_analysts_are_offered_no_action_on_the_lists(analyst_user, path):
    html = _client(analyst_user).get(path).content.decode()
    assert 'name="action"' not in html, path
