"""WebSocket ws/deployments/: pushes {"type": "deployment.changed", "deployment": name} on every
transition, weight change and new gate verdict. Logged-in users with a portal role only."""

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.core.roles import has_portal_role

from .notify import GROUP


class DeploymentsConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not await sync_to_async(has_portal_role)(user):
            await self.close(code=4403)
            return
        await self.channel_layer.group_add(GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def receive_json(self, content, **kwargs):
        # Read-only feed: the dashboard acts through the REST API.
        pass

    async def deployment_changed(self, event):
        await self.send_json({"type": "deployment.changed", "deployment": event["deployment"]})
