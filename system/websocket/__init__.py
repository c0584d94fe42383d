"""The WebSocket endpoints ``/ws/events`` and ``/ws/system`` (CONTRACT §3).

- ``protocol``: client messages (§3.4), their errors, and the per-connection subscription (§3.5); pure logic.
- ``throttle``: the ``websocket`` throttle tier (§6.2), connection attempts per client IP in the cache.
- ``consumers``: the Channels consumers that put it together (handshake §3.1, heartbeat §3.3, resync §3.2).
"""
