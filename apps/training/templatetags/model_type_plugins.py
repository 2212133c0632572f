from django import template

register = template.Library()


@register.simple_tag
def model_type_plugin_errors() -> list[str]:
    """Plugins that failed to load, for the admin banner (discovery runs once per process)."""
    from apps.frameworks.discovery import plugin_problems

    return plugin_problems()
