"""ws/dashboard/: one socket that keeps the dashboard current.

It listens to the groups other apps already publish to (deployments, training-runs, tuning-studies)
and this app's own (run progress), and answers each change with the fresh item as the summary API
shows it, so the page never polls:
  {"type": "deployment", "deployment": {...}} / {"type": "deployment.removed", "name": ...}
  {"type": "run", "run": {...}} / {"type": "run.progress", "run": id, "epoch", ...}
  {"type": "study", "study": {...}}
  {"type": "alert", "alert": {...}}  (an alert rule fired or resolved: apps.alerts)
Users without a portal role are accepted only to be closed at once with code 4403, so the browser
learns it was refused (a rejected handshake looks like a network error) and stops retrying.
"""

import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.core.roles import has_portal_role

from . import selectors
from .live import LISTENED_GROUPS

logger = logging.getLogger(__name__)

CLOSE_FORBIDDEN = 4403
PROGRESS_FIELDS = ("run", "epoch", "total_epochs", "percent", "eta_seconds", "metrics", "attempt")


@database_sync_to_async
def _allowed(user) -> bool:
    return has_portal_role(user)


@database_sync_to_async
def _deployment(name: str):
    return selectors.deployment_summary(name=name)


@database_sync_to_async
def _run_and_study(run_id: int):
    run = selectors.run_summary(run_id=run_id)
    study = selectors.study_summary_for_trial(trial_id=run["trial_id"]) if run and run["trial_id"] else None
    return run, study


@database_sync_to_async
def _study(study_id: int):
    return selectors.study_summary(study_id=study_id)


@database_sync_to_async
def _alert_event(event_id: int):
    from apps.alerts.selectors import alert_event_list, alert_event_summary

    event = alert_event_list().filter(pk=event_id).first()
    return alert_event_summary(event) if event is not None else None


class DashboardConsumer(AsyncJsonWebsocketConsumer):
    joined = False

    async def connect(self):
        if not await _allowed(self.scope.get("user")):
            await self.accept()
            await self.close(code=CLOSE_FORBIDDEN)
            return
        for group in LISTENED_GROUPS:
            await self.channel_layer.group_add(group, self.channel_name)
        self.joined = True
        await self.accept()

    async def disconnect(self, code):
        if self.joined:
            for group in LISTENED_GROUPS:
                await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        # Server → browser only.
        return

    async def deployment_changed(self, event):
        name = event.get("deployment")
        summary = await _deployment(name)
        if summary is None or not summary["active"]:
            await self.send_json({"type": "deployment.removed", "name": name})
        else:
            await self.send_json({"type": "deployment", "deployment": summary})

    async def run_status(self, event):
        run, study = await _run_and_study(int(event["run"]))
        if run is not None:
            await self.send_json({"type": "run", "run": run})
        if study is not None:
            await self.send_json({"type": "study", "study": study})

    async def run_progress(self, event):
        await self.send_json({"type": "run.progress", **{k: event.get(k) for k in PROGRESS_FIELDS}})

    async def study_changed(self, event):
        study = await _study(int(event["study"]))
        if study is not None:
            await self.send_json({"type": "study", "study": study})

    async def alert_event(self, event):
        alert = await _alert_event(int(event["event"]))
        if alert is not None:
            await self.send_json({"type": "alert", "alert": alert})
