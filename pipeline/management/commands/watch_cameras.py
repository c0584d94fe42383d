"""``manage.py watch_cameras [--polling] [--root PATH]``: the camera watcher alone (CONTRACT §4.1, §8.1).

Runs until SIGINT or SIGTERM. Accepted files are dispatched to the broker; without one, tasks run eagerly on an
in-process pool (like ``serve``), so processing never holds up the watcher loop.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from hsi.dispatch import start_local_pool, stop_local_pool
from pipeline.watcher import CameraWatcher

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Command(BaseCommand):
    help = "Watch the camera folders and ingest new files until SIGINT/SIGTERM."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--polling", action="store_true", help="poll the tree instead of using inotify")
        parser.add_argument("--root", default=None, help="camera root to watch (default FOSCAM_BASE_PATH)")

    def handle(self, *args, **options) -> None:
        if options["root"]:
            # Cameras are mapped against FOSCAM_BASE_PATH, so the watched root becomes it for this process.
            settings.FOSCAM_BASE_PATH = Path(options["root"]).expanduser().absolute()
        watcher = CameraWatcher(mode="polling" if options["polling"] else None)
        previous = _install_stop_handlers(watcher)
        eager_pool = settings.CELERY_TASK_ALWAYS_EAGER
        if eager_pool:
            start_local_pool(settings.SERVE_WORKER_THREADS)
        try:
            try:
                watcher.start()
            except OSError as error:
                watcher.shutdown()
                raise CommandError(f"Cannot watch {watcher.root}: {error}") from None
            self.stdout.write(f"Watching {watcher.root} ({watcher.mode}). Stop with CONTROL-C (SIGINT) or SIGTERM.")
            self.stdout.flush()
            watcher.run_forever()
        finally:
            _restore_handlers(previous)
            if eager_pool:
                stop_local_pool(wait=False)
        self.stdout.write("Watcher stopped.")


def _install_stop_handlers(watcher: CameraWatcher) -> dict:
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for number in STOP_SIGNALS:
        previous[number] = signal.signal(number, lambda _signum, _frame: watcher.stop())
    return previous


def _restore_handlers(previous: dict) -> None:
    for number, handler in previous.items():
        signal.signal(number, handler)
