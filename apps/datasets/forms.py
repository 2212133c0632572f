import json

from django import forms
from django.core.exceptions import ValidationError

from .ingest import Limits, kinds_from_schema
from .models import Dataset, FeatureSpec
from .preprocessing import SpecError, validate_spec


class VersionUploadForm(forms.Form):
    file = forms.FileField()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The limits are settings: say the current ones where the file is chosen.
        self.fields["file"].help_text = (
            "CSV (UTF-8 with a header row) or Parquet, optionally gzip-compressed (.csv.gz) or alone in a .zip; "
            f"{Limits.from_settings().describe()}."
        )


class FeatureSpecAdminForm(forms.ModelForm):
    """Checks the JSON and the steps against the dataset's newest version before anything is saved."""

    spec = forms.JSONField(
        widget=forms.Textarea(attrs={"rows": 24, "cols": 100, "style": "font-family:monospace"}),
        help_text="Steps, target, features/exclude; see the documentation of the spec format.",
    )

    class Meta:
        model = FeatureSpec
        fields = ["dataset", "name", "description", "spec"]

    def clean(self):
        data = super().clean()
        dataset, spec = data.get("dataset"), data.get("spec")
        if dataset is None or spec is None:
            return data
        latest = dataset.versions.order_by("-version").first()
        if latest is None:
            raise ValidationError({"dataset": "upload a version first: the spec is checked against its columns."})
        try:
            data["spec"] = validate_spec(spec, dataset=dataset, kinds=kinds_from_schema(latest.schema))
        except SpecError as exc:
            raise ValidationError({"spec": str(exc)}) from None
        return data


class FeaturePreviewForm(forms.Form):
    version = forms.TypedChoiceField(coerce=int, label="Dataset version")
    rows = forms.IntegerField(min_value=1, max_value=200, initial=20)

    def __init__(self, *args, dataset: Dataset, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["version"].choices = [(v, f"v{v}") for v in dataset.versions.values_list("version", flat=True)]


def pretty_json(value) -> str:
    return json.dumps(value, indent=2, sort_keys=False)
