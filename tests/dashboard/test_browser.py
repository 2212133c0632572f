"""The dashboard in real headless Chromium against a live uvicorn server (HTTP + WebSockets through
Channels), the test database, Redis and a real Celery worker.

Screenshots of every width land in tests/artifacts/screenshots/.
"""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import timedelta

import pytest

from tests.brokers import free_port
from tests.conftest import ARTIFACTS, ROOT, worker_env

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("built_frontend")]

SCREENSHOTS = ARTIFACTS / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WIDTHS = (360, 768, 1280, 1920)
TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def server_url(django_db_setup, django_db_blocker):
    """The portal's web process (mlops_portal.serve, as the Procfile) on a free port, on the test database and Redis."""
    with django_db_blocker.unblock():
        env = worker_env()
    port = free_port()
    log_path = ARTIFACTS / "web-dashboard.log"
    log = open(log_path, "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlops_portal.serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the web process exited early, see {log_path}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the web process did not answer within 60s, see {log_path}")
        time.sleep(0.2)
    yield url
    os.killpg(proc.pid, 15)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
    log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the tests' own ORM calls are still sync.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def open_dashboard(browser, server_url):
    """Logs a user in through the admin login form and opens the dashboard; yields the page."""
    contexts = []

    def open_as(user, *, width=1280, height=900):
        # Reduced motion: screenshots show settled bars, not a transition caught half-way.
        context = browser.new_context(viewport={"width": width, "height": height}, reduced_motion="reduce")
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.errors = errors
        page.goto(f"{server_url}/")
        assert "/admin/login/" in page.url  # the login guards the dashboard
        page.fill("#id_username", user.username)
        page.fill("#id_password", f"{user.username}-pass-123")
        page.click("input[type=submit]")
        page.wait_for_url(f"{server_url}/")
        page.get_by_text("Live updates: Live").wait_for()
        return page

    yield open_as
    for context in contexts:
        context.close()


@pytest.fixture
def live_staff_api(server_url, staff_user):
    """REST calls to the live server with a staff token. Calls go over HTTP, not the in-process test
    client: this thread runs Playwright's event loop, where sync code that pushes to Channels fails."""
    from apps.core.services import api_token_create

    _, raw = api_token_create(user=staff_user, name="browser tests")

    def post(path: str, body) -> tuple[int, dict]:
        request = urllib.request.Request(
            f"{server_url}{path}",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {raw}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    return post


def _deployment_card(page):
    return page.locator("article[data-deployment='price-direction']")


def _weights(page) -> list[str]:
    return _deployment_card(page).locator("[data-testid=weight]").all_inner_texts()


def test_a_training_runs_log_lines_appear_in_the_widget_while_it_runs(
    open_dashboard, staff_user, live_staff_api, experiment, celery_worker
):
    from apps.training.models import TrainingRun

    page = open_dashboard(staff_user)
    page.get_by_text("No training runs yet").wait_for()
    # Record when each line first shows up in the widget, to compare with when the run finished.
    page.evaluate("""() => {
        window.__firstLineAt = null;
        new MutationObserver(() => {
            if (!window.__firstLineAt && document.querySelector('.mlops-logs [data-seq]')) window.__firstLineAt = Date.now();
        }).observe(document.body, {subtree: true, childList: true});
    }""")
    status, body = live_staff_api(
        f"/api/v1/experiments/{experiment.pk}/train",
        {
            "framework": "torch",
            "model_type": "mlp",
            "params": {"epochs": 12, "hidden_size": 8, "num_layers": 1, "patience": 1000},
        },
    )
    assert status == 201, body
    run_id = body["id"]

    logs = page.locator(".mlops-logs")
    logs.locator(".mlops-log__msg", has_text="epoch 1/12").wait_for(timeout=60_000)
    logs.locator(".mlops-pill--succeeded").wait_for(timeout=90_000)
    run = TrainingRun.objects.get(pk=run_id)
    assert run.status == "succeeded", run.error_message
    first_line_at = page.evaluate("window.__firstLineAt") / 1000
    assert first_line_at < run.finished_at.timestamp(), "the first line only appeared after the run had finished"

    shown = [int(s) for s in logs.locator("[data-seq]").evaluate_all("els => els.map(e => e.dataset.seq)")]
    assert shown == list(range(1, run.log_seq + 1))  # every line once, in order
    assert logs.get_by_role("progressbar").get_attribute("aria-valuenow") == "100"
    assert logs.get_by_role("img", name="Loss by epoch").is_visible()
    # The runs panel heard of the run through the dashboard socket, without a reload.
    assert (
        page.locator("section[aria-labelledby=runs-title]")
        .get_by_text("No training run is queued or running.")
        .is_visible()
    )
    assert page.errors == []


def test_a_rollout_change_made_through_the_api_shows_on_the_dashboard_without_reload(
    open_dashboard, analyst_user, live_staff_api, rolling_deployment
):
    page = open_dashboard(analyst_user)
    assert _weights(page) == ["90%", "10%"]
    page.evaluate("window.__sameDocument = true")

    status, body = live_staff_api(
        "/api/v1/deployments/price-direction/rollout/promote", {"stage": 0, "reason": "early success"}
    )
    assert status == 200, body

    page.wait_for_function(
        "() => [...document.querySelectorAll(\"article[data-deployment='price-direction'] [data-testid=weight]\")]"
        ".map(e => e.textContent).join() === '50%,50%'"
    )
    card = _deployment_card(page)
    assert "stage 50% (2 of 3)" in card.locator(".mlops-rollout__stage").inner_text()
    assert (
        card.locator(".mlops-events li")
        .first.inner_text()
        .startswith(card.locator(".mlops-events time").first.inner_text())
    )
    assert "Stage advanced: early success · staffer" in card.locator(".mlops-events li").first.inner_text()
    assert page.evaluate("window.__sameDocument") is True
    assert page.errors == []


def test_an_analyst_sees_no_action_buttons(open_dashboard, analyst_user, rolling_deployment):
    page = open_dashboard(analyst_user)
    card = _deployment_card(page)
    card.wait_for()
    for name in ("Promote", "Pause", "Resume", "Roll back"):
        assert card.get_by_role("button", name=name).count() == 0
    assert page.get_by_text("read only").is_visible()


def test_staff_pause_a_rollout_from_the_dashboard_after_confirming(open_dashboard, staff_user, rolling_deployment):
    from apps.deployments.models import DeploymentEvent, Rollout

    page = open_dashboard(staff_user)
    card = _deployment_card(page)
    card.get_by_role("button", name="Pause").click()
    dialog = page.get_by_role("dialog", name="Pause price-direction?")
    dialog.get_by_role("button", name="Cancel").click()
    assert Rollout.objects.get(deployment=rolling_deployment).status == "running"

    card.get_by_role("button", name="Pause").click()
    dialog.get_by_label("Reason").fill("checking a data issue")
    dialog.get_by_role("button", name="Pause").click()
    card.locator(".mlops-rollout__stage .mlops-pill--paused").wait_for()
    assert card.get_by_role("button", name="Resume").is_enabled()
    assert card.get_by_role("button", name="Pause").is_disabled()
    assert Rollout.objects.get(deployment=rolling_deployment).status == "paused"
    event = DeploymentEvent.objects.filter(deployment=rolling_deployment).first()
    assert (event.kind, event.reason, event.actor_label) == ("rollout_paused", "checking a data issue", "staffer")
    assert page.errors == []


def _traffic_for_the_last_hour(deployment, post, n: int = 48):
    """Real predictions and feedback through the REST API, then spread over the last hour."""
    from django.utils import timezone

    from apps.deployments.selectors import deployment_primary_version
    from apps.monitoring.models import Feedback, PredictionLog
    from apps.registry.loading import load_model_version

    example = load_model_version(deployment_primary_version(deployment=deployment)).input_example["rows"]
    request_ids = []
    for _ in range(n):
        status, body = post("/api/v1/deployments/price-direction/predict", {"dataframe_records": example})
        assert status == 200, body
        request_ids.append(body["request_id"])
    # Two rows per request (one per ticker); alternate the truth so the accuracy is neither 0 nor 1.
    truth = [
        {"request_id": rid, "ground_truth": [["up", "down"], ["up", "up"], ["down", "down"]][i % 3]}
        for i, rid in enumerate(request_ids)
    ]
    status, body = post("/api/v1/deployments/price-direction/feedback", {"feedback": truth})
    assert status in (200, 201), body
    now = timezone.now()
    for i, rid in enumerate(request_ids):
        served = now - timedelta(minutes=55 * (n - i) / n)
        PredictionLog.objects.filter(request_id=rid).update(served_at=served)
        Feedback.objects.filter(prediction__request_id=rid).update(served_at=served)


def test_at_each_width_the_page_has_no_horizontal_overflow_and_targets_are_touch_sized(
    open_dashboard, staff_user, live_staff_api, rolling_deployment, running_run
):
    _traffic_for_the_last_hour(rolling_deployment, live_staff_api)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems = []
    for width in WIDTHS:
        page = open_dashboard(staff_user, width=width, height=900)
        page.get_by_role("table", name="Champion vs challenger over the window").wait_for()
        requests_chart = page.get_by_role("img", name="Requests per bucket")
        requests_chart.wait_for()
        bars = requests_chart.locator("rect").evaluate_all("rs => rs.filter(r => +r.getAttribute('height') > 0).length")
        if not bars:
            problems.append(f"{width}px: the requests chart has no bars although predictions were served")
        page.get_by_role("img", name="Loss by epoch").wait_for()
        page.screenshot(path=str(SCREENSHOTS / f"dashboard-{width}.png"), full_page=True)
        # Section by section as well, readable at full size when reviewing a narrow layout.
        for name, section in (
            ("deployments", "section[aria-labelledby=deployments-title]"),
            ("performance", ".mlops-perf"),
            ("logs", ".mlops-logs"),
        ):
            page.locator(section).screenshot(path=str(SCREENSHOTS / f"dashboard-{width}-{name}.png"))
        overflow = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        if overflow[0] > overflow[1]:
            problems.append(f"{width}px: page is {overflow[0]}px wide")
        small = page.evaluate("""() => [...document.querySelectorAll('button, select, input, summary, a')]
            .filter(e => e.offsetParent !== null || e.type === 'radio')
            .map(e => { const r = (e.type === 'radio' ? e.parentElement : e).getBoundingClientRect();
                        return [e.textContent.trim() || e.getAttribute('aria-label') || e.name || e.type, r.width, r.height]; })
            .filter(([, w, h]) => w < 44 || h < 44)""")
        if small:
            problems.append(f"{width}px: targets under 44px: {small}")
        assert page.errors == []
        page.context.close()
    assert problems == []
