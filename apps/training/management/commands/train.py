import json
import time

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.training.choices import RUN_TERMINAL, RunOrigin, RunStatus
from apps.frameworks import FRAMEWORKS, get_adapter
from apps.frameworks.discovery import plugin_errors
from apps.training.models import Experiment, RunLogLine, TrainingRun
from apps.training.services.experiments import experiment_training_config
from apps.training.services.training_pipeline import training_run_execute, training_run_start


class Command(BaseCommand):
    help = "Starts a training run of an experiment (queued for the workers, or --inline in this process)."

    def add_arguments(self, parser):
        parser.add_argument("--experiment", help="experiment name")
        parser.add_argument(
            "--list-model-types",
            action="store_true",
            help="list every framework's model types (built-in and plugins) and exit",
        )
        parser.add_argument("--framework", choices=list(FRAMEWORKS))
        parser.add_argument("--model-type", dest="model_type")
        parser.add_argument("--params", help="JSON object, e.g. '{\"epochs\": 5}'")
        parser.add_argument("--device", choices=["cpu", "gpu"])
        parser.add_argument("--seed", type=int)
        parser.add_argument("--no-register", action="store_true", help="do not register the model")
        parser.add_argument("--wait", action="store_true", help="follow the log until the run ends")
        parser.add_argument("--timeout", type=float, default=3600, help="seconds --wait waits (default 3600)")
        parser.add_argument("--inline", action="store_true", help="train in this process instead of a worker")

    def handle(
        self,
        *args,
        experiment,
        framework,
        model_type,
        params,
        device,
        seed,
        no_register,
        wait,
        timeout,
        inline,
        list_model_types,
        **options,
    ):
        if list_model_types:
            self._list_model_types()
            return
        if not experiment:
            raise CommandError("--experiment is required (or --list-model-types).")
        found = Experiment.objects.filter(name=experiment).first()
        if found is None:
            names = ", ".join(Experiment.objects.values_list("name", flat=True)[:20]) or "none yet"
            raise CommandError(f"No experiment named {experiment!r} (known: {names}).")
        if params is not None:
            try:
                params = json.loads(params)
            except json.JSONDecodeError as exc:
                raise CommandError(f"--params is not valid JSON: {exc}") from exc
            if not isinstance(params, dict):
                raise CommandError("--params must be a JSON object.")
        try:
            config = experiment_training_config(
                experiment=found, framework=framework, model_type=model_type, params=params, device=device
            )
            run = training_run_start(
                experiment=found,
                seed=seed,
                register_model=not no_register,
                origin=RunOrigin.CLI,
                dispatch=not inline,
                **config,
            )
        except ValidationError as exc:
            details = (
                "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
                if hasattr(exc, "error_dict")
                else " ".join(exc.messages)
            )
            raise CommandError(details) from exc
        where = "in this process" if inline else f"on queue {run.queue}"
        self.stdout.write(f"run {run.pk}: {run.framework}/{run.model_type} on {run.device}, {where}")
        if inline:
            training_run_execute(run_id=run.pk)
            self._follow(run, timeout=0)
        elif wait:
            self._follow(run, timeout=timeout)
        run.refresh_from_db()
        if inline or wait:
            self._summary(run)
            if run.status != RunStatus.SUCCEEDED:
                raise CommandError(f"run {run.pk} ended {run.status}: {run.error_message or run.stop_reason}")

    def _follow(self, run: TrainingRun, *, timeout: float):
        seen = 0
        deadline = time.monotonic() + timeout
        while True:
            for line in RunLogLine.objects.filter(run=run, seq__gt=seen).order_by("seq")[:1000]:
                self.stdout.write(f"{line.seq:>5} {line.level:<7} {line.message}")
                seen = line.seq
            status = TrainingRun.objects.filter(pk=run.pk).values_list("status", flat=True).get()
            if status in RUN_TERMINAL:
                if not RunLogLine.objects.filter(run=run, seq__gt=seen).exists():
                    return
                continue
            if time.monotonic() > deadline:
                raise CommandError(f"run {run.pk} is still {status} after {timeout:g}s (it keeps running)")
            time.sleep(0.5)

    def _summary(self, run: TrainingRun):
        self.stdout.write(f"run {run.pk} {run.status} after {run.attempts} attempt(s)")
        if run.val_metrics:
            self.stdout.write(
                "validation: "
                + ", ".join(f"{k}={v:.4g}" for k, v in run.val_metrics.items() if isinstance(v, (int, float)))
            )
        for version in run.model_versions.select_related("registered_model"):
            self.stdout.write(f"registered {version.registered_model.name} version {version.version}")

    def _list_model_types(self):
        for framework in FRAMEWORKS:
            for name, described in get_adapter(framework).describe().items():
                plugin = described["plugin"]
                params = ", ".join(described["params"])
                self.stdout.write(
                    f"{framework}/{name}  [{'/'.join(described['tasks'])}]  "
                    f"{plugin['package']} {plugin['package_version']}  params: {params}"
                )
        for error in plugin_errors():
            self.stderr.write(f"plugin not loaded: {error}")
