"""The admin study page in headless Chromium against the live web process: one live component that
takes a finished trial without a reload, pruned trials marked as pruned, no horizontal overflow at
phone or desktop width, and no staff button offered to an analyst."""

import threading

import pytest

from tests.dashboard.test_browser import SCREENSHOTS, TIMEOUT_MS, browser, server_url  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("built_frontend")]


def _login(browser, server_url, user, width):  # noqa: F811
    context = browser.new_context(viewport={"width": width, "height": 900}, reduced_motion="reduce")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{server_url}/admin/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", f"{user.username}-pass-123")
    page.click("input[type=submit]")
    page.wait_for_url(f"{server_url}/admin/")
    return context, page


def _in_own_thread(fn):
    """Tuning's services announce on the channel layer with async_to_sync, which refuses to run in
    Playwright's thread (it has an event loop): run them where a worker would, in a plain thread."""
    from django.db import connection

    def target():
        try:
            fn()
        finally:
            connection.close()

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(30)


def test_the_study_page_is_live_marks_pruned_trials_and_fits_phone_and_desktop(
    browser,
    server_url,
    running_study,  # noqa: F811
    staff_user,
    analyst_user,
):
    from apps.tuning.services.state import trial_status_change

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    url = f"{server_url}/admin/tuning/tuningstudy/{running_study.pk}/change/"
    context, page = _login(browser, server_url, staff_user, 1280)
    page.goto(url)
    widget = page.locator(".mlops-study")
    completed = widget.locator('tr[data-trial-status="completed"]')
    completed.nth(1).wait_for()
    assert completed.count() == 2
    assert page.locator('[data-widget="tuning-study"]').count() == 1
    assert widget.locator('tr[data-trial-status="pruned"]').get_by_text("pruned").count() >= 1
    assert page.locator('input[value="Pause"]').count() == 1
    widget.get_by_text("Live").first.wait_for()

    running = running_study.trials.get(number=4)
    _in_own_thread(lambda: trial_status_change(trial=running, to="completed", reason="test", fields={"value": 0.7}))
    completed.nth(2).wait_for()  # pushed over the socket, no reload
    assert widget.locator('tr[data-trial-status="running"]').count() == 0
    page.screenshot(path=str(SCREENSHOTS / "admin-study-staff-1280.png"), full_page=True)
    context.close()

    context, page = _login(browser, server_url, analyst_user, 360)
    page.goto(url)
    page.locator('.mlops-study tr[data-trial-status="completed"]').nth(2).wait_for()
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    assert page.locator('input[value="Pause"]').count() == 0 and page.locator('input[value="Stop"]').count() == 0
    page.screenshot(path=str(SCREENSHOTS / "admin-study-analyst-360.png"), full_page=True)
    context.close()
