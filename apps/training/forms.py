from django import forms
from django.core.exceptions import ValidationError

from apps.core.admin_display import PrettyJSONFormField
from apps.core.limits import INT32_MAX

from .choices import Device, Framework
from .models import Experiment, TrainingSchedule


class TrainNowForm(forms.Form):
    """Blank fields take each experiment's defaults."""

    framework = forms.ChoiceField(choices=[("", "— experiment default —"), *Framework.choices], required=False)
    model_type = forms.CharField(required=False, help_text="e.g. mlp, lstm, linear, gradient_boosting")
    # Pre-filled with {} (an empty object), not the JSON `null` an unset JSONField shows.
    params = PrettyJSONFormField(
        required=False,
        initial=dict,
        help_text='JSON object, e.g. {"epochs": 5}; {} or blank: the experiment\'s defaults',
    )
    device = forms.ChoiceField(choices=[("", "— experiment default —"), *Device.choices], required=False)
    seed = forms.IntegerField(required=False, min_value=0, max_value=INT32_MAX)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from apps.frameworks import FRAMEWORKS, get_adapter

        # Plugin model types are listed like the built-in ones.
        listed = "; ".join(f"{fw}: {', '.join(get_adapter(fw).model_types)}" for fw in FRAMEWORKS)
        self.fields["model_type"].help_text = f"Blank: the experiment default. Available — {listed}."

    def clean_params(self):
        params = self.cleaned_data.get("params")
        if params in (None, "", {}):
            return None
        if not isinstance(params, dict):
            raise ValidationError("must be a JSON object of parameter names to values.")
        return params


class ExperimentAdminForm(forms.ModelForm):
    class Meta:
        model = Experiment
        exclude = ["created_by"]

    def clean(self):
        from .services.experiments import experiment_validate

        cleaned = super().clean()
        if self.errors:
            return cleaned
        candidate = Experiment(**{f: cleaned.get(f) for f in cleaned if f in {x.name for x in Experiment._meta.fields}})
        candidate.pk = self.instance.pk
        experiment_validate(candidate)
        cleaned["default_params"] = candidate.default_params
        return cleaned


class TrainingScheduleAdminForm(forms.ModelForm):
    class Meta:
        model = TrainingSchedule
        exclude = ["periodic_task", "created_by"]

    def clean(self):
        from .services.schedules import training_schedule_validate

        cleaned = super().clean()
        if self.errors:
            return cleaned
        candidate = TrainingSchedule(
            **{f: cleaned.get(f) for f in cleaned if f in {x.name for x in TrainingSchedule._meta.fields}}
        )
        training_schedule_validate(candidate)
        return cleaned
