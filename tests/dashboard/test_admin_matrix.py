"""The staff cockpit's main admin pages (index, run, study, rollout, model version) in headless Chromium
at 360, 768, 1280 and 1920 px, as ML Staff and as an analyst: the page never scrolls sideways, each live
widget is there once, an analyst is offered no action they cannot run, and axe-core (injected from
frontend2/node_modules, no CDN) finds no serious or critical WCAG 2 A/AA violation.

One data set for the whole matrix and one logged-in browser context per role: each page opens once
(at the narrowest width) and is then resized through the others, as a reader turning a tablet or
widening a window would. Screenshots land in tests/artifacts/screenshots/admin-<page>-<role>-<width>.png.
"""

import re

import pytest

from tests.conftest import ROOT
from tests.dashboard.test_admin_browser import _in_own_thread, _login
from tests.dashboard.test_browser import SCREENSHOTS, TIMEOUT_MS, WIDTHS, browser, server_url  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("built_frontend")]

AXE = ROOT / "frontend2" / "node_modules" / "axe-core" / "axe.min.js"

# The WCAG 2 A/AA rules (color-contrast, label, button-name, link-name, image-alt, aria-*, ...);
# only serious and critical findings fail, each named with its rule, element and what to fix.
AXE_VIOLATIONS = """async () => {
  const result = await axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa"]},
                                          resultTypes: ["violations"]});
  return result.violations.filter(v => v.impact === "serious" || v.impact === "critical").map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 4).map(n => ({target: n.target.join(" "), summary: n.failureSummary})),
  }));
}"""

# Null when the page does not scroll sideways; else the widths and the outermost elements that stick
# out (not counting content scrolled inside its own box), so the failure says what to fix.
SIDEWAYS_OVERFLOW = """() => {
  const root = document.scrollingElement;
  if (root.scrollWidth <= root.clientWidth + 1) return null;
  const limit = root.clientWidth + 1;
  const scrollsItself = (e) => { for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
    if (getComputedStyle(a).overflowX !== "visible") return true; } return false; };
  const out = [...document.body.querySelectorAll("*")].filter(e => e.getBoundingClientRect().right > limit && !scrollsItself(e));
  const name = (e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") +
    [...e.classList].slice(0, 3).map(c => "." + c).join("") + ` (right edge ${Math.round(e.getBoundingClientRect().right)})`;
  return {scrollWidth: root.scrollWidth, clientWidth: root.clientWidth,
          culprits: out.filter(e => !out.includes(e.parentElement)).slice(0, 5).map(name)};
}"""

WIDGET_COUNTS = """() => { const counts = {};
  document.querySelectorAll("[data-widget]").forEach(e => { counts[e.dataset.widget] = (counts[e.dataset.widget] || 0) + 1; });
  return counts; }"""

# Controls that change something, by the markup the pages use (Django's submit row, add/delete links,
# admin-action forms, the rollout and study verbs) and by the words on them.
# Hidden ones count too when they are admin-action forms (a button elsewhere may submit them).
STAFF_CONTROLS = (
    "a.addlink, a.changelink, a.deletelink, input[name=_save], input[name=_continue], "
    "input[name=_addanother], #rollout-actions, a[href$='/artifact.zip']"
)
ACTION_FORMS = "form:has(input[name=action])"
STAFF_WORDS = re.compile(
    r"^(train now|start study|start|promote|pause|resume|abort|stop|roll ?back|cancel|retry|delete|"
    r"add|save|download artifact|make .* (champion|challenger))\b",
    re.IGNORECASE,
)
CONTROL_NAMES = """() => [...document.querySelectorAll("a, button, input[type=submit], input[type=button], [role=button]")]
  .filter(e => e.checkVisibility() && !e.closest("#logout-form, #header"))
  .map(e => (e.value || e.getAttribute("aria-label") || e.textContent || "").trim().replace(/\\s+/g, " "))"""


@pytest.fixture
def cockpit(rolling_deployment, running_run, running_study):
    """The five pages, on one running run, one running study and one running rollout."""
    from apps.deployments.models import Rollout

    rollout = Rollout.objects.select_related("champion").get(deployment=rolling_deployment)
    return {
        "index": "/admin/",
        "run": f"/admin/training/trainingrun/{running_run.pk}/change/",
        "study": f"/admin/tuning/tuningstudy/{running_study.pk}/change/",
        "rollout": f"/admin/deployments/rollout/{rollout.pk}/change/",
        "version": f"/admin/registry/modelversion/{rollout.champion_id}/change/",
    }


# The widgets each page embeds (exactly once) and what shows that the live one has loaded its data.
EXPECTED_WIDGETS = {
    "index": {},
    "run": {"training-logs": 1},
    "study": {"tuning-study": 1},
    "rollout": {},
    "version": {},
}
LOADED = {"run": ".mlops-logs [data-seq='4']", "study": ".mlops-study tr[data-trial-status='completed'] >> nth=1"}
# What staff are offered on each page: proves the analyst check looks for markup the pages really use.
STAFF_SEES = {
    "study": "input[value='Pause']",
    "rollout": "#rollout-actions button",
    "version": "a[href$='/artifact.zip']",
}


def _page_problems(page, name: str, *, role: str, width: int) -> list[str]:
    problems = []
    overflow = page.evaluate(SIDEWAYS_OVERFLOW)
    if overflow:
        problems.append(
            f"scrolls sideways ({overflow['scrollWidth']} > {overflow['clientWidth']} px); "
            f"sticking out: {', '.join(overflow['culprits']) or 'nothing found'}"
        )
    widgets = page.evaluate(WIDGET_COUNTS)
    if widgets != EXPECTED_WIDGETS[name]:
        problems.append(f"widgets {widgets}, expected {EXPECTED_WIDGETS[name]}")
    if name == "run" and page.locator("[role=progressbar], .portal-progress").count() != 1:
        problems.append("more than one progress bar: a second copy of the run's state")
    if role == "analyst":
        offered = page.locator(STAFF_CONTROLS).evaluate_all(
            "els => els.filter(e => e.checkVisibility()).map(e => e.outerHTML.slice(0, 120))"
        )
        offered += page.locator(ACTION_FORMS).evaluate_all("els => els.map(e => e.outerHTML.slice(0, 160))")
        offered += [n for n in page.evaluate(CONTROL_NAMES) if STAFF_WORDS.match(n)]
        if offered:
            problems.append(f"offers an analyst staff actions: {offered}")
    elif name in STAFF_SEES and page.locator(STAFF_SEES[name]).count() == 0:
        problems.append(f"staff miss their controls ({STAFF_SEES[name]})")
    for violation in page.evaluate(AXE_VIOLATIONS):
        nodes = "; ".join(f"{n['target']}: {n['summary']}" for n in violation["nodes"])
        problems.append(f"axe {violation['impact']} {violation['id']} ({violation['help']}): {nodes}")
    return problems


# Resolves once the browser has laid out and painted two frames after a resize, so the layout (and
# any React re-render a ResizeObserver schedules) reflects the new width before it is measured.
NEXT_FRAMES = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"


def _signed_in_context(browser, server_url, user):  # noqa: F811
    """A browser context holding a session of `user` made the way Django's test client makes one (the
    login form itself is driven in test_admin_browser.py): no password hashing, no login page load."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    context = browser.new_context(viewport={"width": WIDTHS[0], "height": 900}, reduced_motion="reduce")
    context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": server_url,
            }
        ]
    )
    return context


def _open_cockpit(context, server_url, cockpit, errors):
    """Every cockpit page in its own tab of the role's context, loaded (at the narrowest width) with
    its live widgets' data and axe-core injected, so each width only resizes and re-checks."""
    pages = {}
    for name, path in cockpit.items():
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("pageerror", lambda exc, name=name: errors.append(f"{name} page: script error {exc}"))
        page.goto(f"{server_url}{path}")
        if name in LOADED:
            page.locator(LOADED[name]).wait_for()
        page.add_script_tag(path=str(AXE))
        pages[name] = page
    return pages


def test_every_cockpit_page_fits_each_width_is_accessible_and_offers_analysts_only_what_they_can_run(
    browser, server_url, cockpit, staff_user, analyst_user
):  # noqa: F811
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems = []
    for role, user in (("staff", staff_user), ("analyst", analyst_user)):
        context = _signed_in_context(browser, server_url, user)
        errors = []
        pages = _open_cockpit(context, server_url, cockpit, errors)
        assert pages["index"].locator("#user-tools").get_by_text(user.username).count() == 1, "not signed in"
        for name, page in pages.items():
            # A background tab paints about once a second; the one in front paints every frame.
            page.bring_to_front()
            for width in WIDTHS:
                page.set_viewport_size({"width": width, "height": 900})
                page.evaluate(NEXT_FRAMES)
                assert page.evaluate("window.innerWidth") == width
                problems += [
                    f"{name} page, {role}, {width} px: {p}" for p in _page_problems(page, name, role=role, width=width)
                ]
                page.screenshot(
                    path=str(SCREENSHOTS / f"admin-{name}-{role}-{width}.png"), full_page=True, caret="initial"
                )
        problems += [f"{role}: {e}" for e in errors]
        context.close()
    assert not problems, "\n".join(problems)


def test_the_run_page_shows_progress_and_the_end_of_a_run_pushed_while_it_is_open(
    browser,
    server_url,
    running_run,  # noqa: F811
    analyst_user,
):
    from apps.training.choices import RunStatus
    from apps.training.services.runs import epoch_record, log_record, run_records_write, run_status_transition

    context, page = _login(browser, server_url, analyst_user, 1280)
    page.goto(f"{server_url}/admin/training/trainingrun/{running_run.pk}/change/")
    widget = page.locator(".mlops-logs")
    widget.locator("[data-seq='4']").wait_for()
    progress = widget.get_by_role("progressbar")
    assert progress.get_attribute("aria-valuenow") == "40"
    page.evaluate("window.__sameDocument = true")

    _in_own_thread(
        lambda: run_records_write(
            run=running_run,
            attempt=1,
            records=[
                epoch_record(3, 5, {"loss": 0.5, "val_loss": 0.6}, 8.0),
                log_record("INFO", "epoch 3/5: loss=0.5, val_loss=0.6"),
            ],
        )
    )
    widget.locator(".mlops-log__msg", has_text="epoch 3/5").wait_for()  # pushed over the socket, no reload
    page.wait_for_function(
        "() => document.querySelector('.mlops-logs [role=progressbar]').getAttribute('aria-valuenow') === '60'"
    )

    _in_own_thread(
        lambda: run_status_transition(
            run_id=running_run.pk, to=RunStatus.FAILED, reason="test", fields={"error_message": "worker lost"}
        )
    )
    widget.locator(".mlops-pill--failed").wait_for()
    assert page.evaluate("window.__sameDocument") is True
    assert page.locator("[role=progressbar]").count() == 1
    context.close()
