"""The Celery application. Task modules register themselves through ``autodiscover_tasks``."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hsi.settings")

app = Celery("hsi")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
