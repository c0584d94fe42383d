"""WebSocket routes (CONTRACT §3): ``/ws/events`` and ``/ws/system``; any other path is refused with 404."""

from django.urls import re_path

from hsi.ws_handshake import HandshakeDenied
from system.websocket.consumers import EventsConsumer, SystemConsumer

websocket_urlpatterns: list = [
    re_path(r"^ws/events/?$", EventsConsumer.as_asgi()),
    re_path(r"^ws/system/?$", SystemConsumer.as_asgi()),
    re_path(r"", HandshakeDenied(404)),
]
