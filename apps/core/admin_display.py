"""How every admin page shows statuses, metrics, JSON and errors, so the apps' admins agree.

Status badges are white text on a dark fill (every fill ≥ 4.5:1 against white, light or dark theme);
the fills live in static/portal/admin.css, keyed by the status value.
"""

import json
import math

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import models
from django.forms.fields import InvalidJSONInput
from django.utils.html import format_html

# Statuses of runs, studies, trials and rollouts share one palette: the same word, the same colour.
BADGE_TONES = {
    "queued": "neutral",
    "draft": "neutral",
    "stopped": "neutral",
    "pending": "neutral",
    "retired": "neutral",
    "running": "active",
    "active": "active",
    "succeeded": "good",
    "completed": "good",
    "promoted": "good",
    "pass": "good",
    "failed": "bad",
    "aborted": "bad",
    "fail": "bad",
    "rolled_back": "bad",
    "cancelled": "warn",
    "paused": "warn",
    "skipped": "neutral",
    "started": "active",
    "pruned": "pruned",
}


def status_badge(status: str, label: str | None = None):
    tone = BADGE_TONES.get(str(status), "neutral")
    return format_html(
        '<span class="portal-badge portal-badge--{}" data-status="{}">{}</span>',
        tone,
        status,
        label or str(status).replace("_", " ").capitalize(),
    )


class FrameworkAndCreatedColumns:
    """The "model" (framework/model type) and "created" columns that runs, studies and versions share."""

    @admin.display(description="model", ordering="framework")
    def model_col(self, obj):
        # <wbr>: a long "xgboost/gradient_boosting" may wrap at the slash instead of widening the table.
        return format_html("{}/<wbr>{}", obj.framework, obj.model_type)

    @admin.display(description="created", ordering="created_at")
    def created_col(self, obj):
        return short_time(obj.created_at)


def round_number(value, digits: int = 4):
    """Four significant digits: enough to tell runs apart, short enough to read in a table."""
    if isinstance(value, bool) or not isinstance(value, float) or not math.isfinite(value):
        return value
    return float(f"{value:.{digits}g}")


def rounded(value, digits: int = 4):
    """The same JSON value with every float rounded (metrics), keys and order kept."""
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v, digits) for v in value]
    return round_number(value, digits)


def format_metric(value, digits: int = 4) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "—" if value is None else str(value)
    return f"{value:.{digits}g}"


def short_time(value) -> str:
    """ "2 Dec 14:05" in the current time zone (with the year when it is not this one): list pages
    show one short time format instead of "Dec. 2, 2026, 2:05 p.m."."""
    from django.utils import timezone

    if value is None:
        return "—"
    local = timezone.localtime(value)
    return local.strftime("%-d %b %H:%M" if local.year == timezone.localtime().year else "%-d %b %Y %H:%M")


def json_block(value, *, digits: int | None = None, open_: bool = False):
    """A JSON value indented in a <details> that says how big it is, so a signature or a library
    list does not push the rest of the page down; small values stay inline and open."""
    if value in (None, "", {}, []):
        return "—"
    shown = rounded(value, digits) if digits else value
    text = json.dumps(shown, indent=2, ensure_ascii=False, sort_keys=False, default=str)
    if isinstance(value, dict):
        summary = f"{len(value)} key{'s' if len(value) != 1 else ''}: {', '.join(list(map(str, value))[:4])}"
        summary += "…" if len(value) > 4 else ""
    elif isinstance(value, list):
        summary = f"{len(value)} item{'s' if len(value) != 1 else ''}"
    else:
        return format_html('<code class="portal-json-inline">{}</code>', text)
    is_open = open_ or text.count("\n") <= 8
    return format_html(
        '<details class="portal-json"{}><summary>{}</summary><pre>{}</pre></details>',
        " open" if is_open else "",
        summary,
        text,
    )


def json_display(field: str, description: str | None = None, *, digits: int | None = None, open_: bool = False):
    """An admin display method showing model field `field` as a formatted JSON block; name it in
    `fields`/`fieldsets` instead of the raw field (Django prefers the model field under the same name)."""

    def display(self, obj):
        return json_block(getattr(obj, field), digits=digits, open_=open_)

    display.short_description = description or field.replace("_", " ")
    return display


def validation_error_text(exc: ValidationError) -> str:
    """One line per field, each message once: services often already start a message with the
    field's name ("model_type: unknown …"), so it is not repeated in front of it."""
    if not hasattr(exc, "error_dict"):
        return " ".join(exc.messages)
    parts = []
    for field, messages in exc.message_dict.items():
        text = " ".join(m.removeprefix(f"{field}: ") for m in messages)
        parts.append(text if field == "__all__" else f"{field}: {text}")
    return "; ".join(parts)


def add_service_errors(form, exc: ValidationError, *, prefix: str = "") -> None:
    """Put a service's ValidationError on the form beside the fields it names (each message once);
    errors about anything the form has no field for go on top of the form."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, f"{prefix}{' '.join(exc.messages)}")
        return
    for field, messages in exc.message_dict.items():
        text = " ".join(m.removeprefix(f"{field}: ") for m in messages)
        if field in form.fields:
            form.add_error(field, f"{prefix}{text}")
        else:
            form.add_error(None, f"{prefix}{'' if field == '__all__' else field + ': '}{text}")


class PrettyJSONFormField(forms.JSONField):
    """A JSON form field whose textarea shows the value indented, one key per line, instead of one
    long line; what the user typed is shown back unchanged when it is not valid JSON."""

    def prepare_value(self, value):
        if isinstance(value, InvalidJSONInput):
            return value
        return json.dumps(value, ensure_ascii=False, indent=2, cls=self.encoder)


# ModelAdmin.formfield_overrides for every model JSONField an admin form edits.
PRETTY_JSON_FIELDS = {models.JSONField: {"form_class": PrettyJSONFormField}}
