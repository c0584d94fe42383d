"""System tasks: the worker heartbeat and the system.status broadcast (CONTRACT §8.3)."""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Iterable

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from hsi.timeutils import utc_iso

WORKER_HEARTBEAT_TTL_SECONDS = 60
IN_PROCESS = "in-process"


def worker_heartbeat_key(hostname: str) -> str:
    return f"hsi:hb:worker:{hostname}"


def worker_heartbeat_write(
    hostname: str | None = None, *, queues: Iterable[str] = (), mode: str = "celery", now: dt.datetime | None = None
) -> dict:
    """Write ``hsi:hb:worker:<hostname>`` (TTL 60 s) with the host, pid, queues and time; returns what was written.

    ``hostname`` is the Celery node name (``celery@host``) in a worker, the machine's name otherwise.
    """
    payload = {
        "hostname": hostname or socket.gethostname(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "mode": mode,
        "queues": sorted(set(queues)),
        "time": utc_iso(now or timezone.now()),
    }
    cache.set(worker_heartbeat_key(payload["hostname"]), payload, WORKER_HEARTBEAT_TTL_SECONDS)
    return payload


def all_queues() -> list[str]:
    """Every queue a task is routed to (CONTRACT §4): what an in-process pool serves."""
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values() if "queue" in route}
    return sorted(routed | {settings.CELERY_TASK_DEFAULT_QUEUE})


@shared_task(bind=True, name="system.heartbeat", ignore_result=True)
def heartbeat(self) -> dict:
    """``system.heartbeat`` (every 15 s): the worker that runs it says it is alive and what it consumes."""
    if self.request.is_eager:
        return worker_heartbeat_write(queues=all_queues(), mode=IN_PROCESS)
    queues = self.app.amqp.queues.consume_from or {}
    return worker_heartbeat_write(self.request.hostname, queues=queues.keys())


@shared_task(name="system.broadcast_status", ignore_result=True)
def broadcast_status() -> dict:
    """Every ``SYSTEM_STATUS_INTERVAL_SECONDS``: a ``system.status`` snapshot for every ``/ws/system`` client."""
    from system.status import system_status_publish

    return system_status_publish()


@shared_task(name="system.poll_gpu", ignore_result=True)
def poll_gpu() -> list[int]:
    """Every ``GPU_POLL_INTERVAL_SECONDS``: one GPUStat per GPU of this host, each broadcast as ``gpu.stats``."""
    from system.gpu import gpu_poll

    return gpu_poll()


# Under the broker's visibility_timeout (1200 s), so a long run is never handed to a second worker meanwhile.
@shared_task(name="system.run_retention", ignore_result=True, soft_time_limit=1080, time_limit=1140)
def run_retention(dry_run: bool = False) -> dict:
    """Daily at ``RETENTION_RUN_AT`` (local): delete what is past its retention period (CONTRACT §4.13).

    Idempotent (a second run finds less or nothing to delete); each batch commits on its own, so a run stopped
    by its time limit keeps what it did and the next day's run goes on from there.
    """
    from system.retention import retention_run

    return retention_run(now=timezone.now(), dry_run=dry_run)
