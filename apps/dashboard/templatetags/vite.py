import logging

from django import template
from django.templatetags.static import static
from django.utils.html import format_html, format_html_join

from ..vite import FrontendNotBuilt, entry_assets

register = template.Library()
logger = logging.getLogger(__name__)


@register.simple_tag
def vite_assets(entry: str):
    """<link>/<script> tags for a Vite entry, e.g. {% vite_assets "src/main.jsx" %}.

    Without a build the page says so in place of the widgets rather than staying blank.
    """
    try:
        assets = entry_assets(entry)
    except FrontendNotBuilt as exc:
        logger.error("frontend assets unavailable: %s", exc)
        return format_html('<p class="frontend-missing" role="alert">The dashboard cannot load: {}</p>', str(exc))
    css = format_html_join("", '<link rel="stylesheet" href="{}">', ((static(f),) for f in assets.css))
    preload = format_html_join("", '<link rel="modulepreload" href="{}">', ((static(f),) for f in assets.preload))
    script = format_html('<script type="module" src="{}"></script>', static(assets.script))
    return css + preload + script
