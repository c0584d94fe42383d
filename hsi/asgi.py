"""ASGI entry point: Django for HTTP, Channels for ``/ws/...`` (CONTRACT §3).

WebSocket handshakes pass the ``Origin`` check (403) before routing; an unknown path is 404 (``hsi.routing``).
A logged-in staff user's session cookie authenticates a WebSocket when API keys are on (§3.1.2): the consumer
reads it at connect (``system.websocket.consumers.session_user``), except for an ``Origin`` admitted only by the
``CORS_ALLOWED_ORIGINS=*`` wildcard (any site could have opened the socket: only a key authenticates it).
"""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hsi.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from hsi.routing import websocket_urlpatterns  # noqa: E402
from hsi.ws_handshake import OriginGate, install_daphne_extensions  # noqa: E402

install_daphne_extensions()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": OriginGate(URLRouter(websocket_urlpatterns)),
    }
)

# Everything loaded so far (Django, the apps, the URL conf) lives as long as the process: moved out of the cyclic
# garbage collector's generations, a full collection no longer walks it; and collections run 20× less often
# (Python's default, 700 allocations, suits short scripts). With 500 sockets every full collection held every
# socket's messages for 60–110 ms (bench/ws_fanout.py).
gc.freeze()
gc.set_threshold(14_000, 10, 10)
