from django import forms
from django.core.exceptions import ValidationError

from apps.core.admin_display import PrettyJSONFormField
from apps.core.limits import INT32_MAX
from apps.training.choices import Framework

from .choices import Direction
from .models import TuningStudy
from .services import study_config_resolve
from .services.studies import EDITABLE_FIELDS

FRAMEWORK_CHOICES = [("", "— experiment default —"), *Framework.choices]


class StudyAdminForm(forms.ModelForm):
    """Blank framework, model type, metric, direction, budget and seed come from the experiment."""

    framework = forms.ChoiceField(choices=FRAMEWORK_CHOICES, required=False)
    model_type = forms.CharField(required=False, help_text="e.g. linear, gradient_boosting, mlp, lstm")
    objective_metric = forms.CharField(required=False, help_text="blank: the experiment's primary metric")
    direction = forms.ChoiceField(choices=[("", "— from the metric —"), *Direction.choices], required=False)
    max_trials = forms.IntegerField(required=False, min_value=1, help_text="blank: the grid's size, or 20")
    seed = forms.IntegerField(required=False, min_value=0, max_value=INT32_MAX, help_text="blank: the experiment's")
    search_space = PrettyJSONFormField(
        help_text='JSON list, e.g. [{"name": "alpha", "type": "float", "low": 0.001, "high": 10, "log": true}, '
        '{"name": "max_iter", "type": "int", "low": 50, "high": 500}, '
        '{"name": "x", "type": "categorical", "choices": ["a", "b"]}]'
    )

    class Meta:
        model = TuningStudy
        fields = ["name", "experiment", *EDITABLE_FIELDS]

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        experiment = cleaned.get("experiment") or getattr(self.instance, "experiment", None)
        data = {field: cleaned.get(field) for field in EDITABLE_FIELDS if field in cleaned}
        for field in ("framework", "model_type", "objective_metric", "direction"):
            data[field] = data.get(field) or None
        try:
            self.resolved = vars(study_config_resolve(experiment=experiment, **data))
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, messages)
            return cleaned
        cleaned.update(self.resolved)
        return cleaned
