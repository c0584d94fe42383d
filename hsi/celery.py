"""The Celery application. Task modules register themselves through ``autodiscover_tasks``.

- The beat schedule comes from ``settings.PERIODIC_JOBS`` (``hsi.schedule``), with a scheduler that keeps the
  ``hsi:hb:scheduler`` heartbeat; both are set once the configuration is read (settings are loaded then).
- The first use of ``app.tasks`` (a worker starting, ``hsi.dispatch.send`` in any process) imports every
  app's ``tasks`` module, so a task is registered wherever it may be sent or run in process.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hsi.settings")

app = Celery("hsi")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _install_beat_schedule(sender, source, **kwargs):
    from hsi.schedule import beat_schedule

    source.beat_schedule = beat_schedule()
    source.beat_scheduler = "hsi.schedule:HeartbeatScheduler"


@app.on_after_finalize.connect
def _import_task_modules(sender, **kwargs):
    from django.apps import apps

    if apps.ready:  # otherwise Django is not set up yet: a worker imports them itself once it is
        sender.autodiscover_tasks(force=True)
