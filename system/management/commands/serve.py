"""``manage.py serve``: the all-in-one server (CONTRACT §0.1, §8.1; DESIGN §3).

In one process: pending migrations are applied, the first start creates an ``admin`` superuser, static files for
``/admin/`` are collected and served, the background services (camera watcher, ticker) start, and daphne serves
``hsi.asgi:application`` (HTTP + WebSockets) until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import secrets
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from daphne.server import Server
from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connection, connections, transaction
from django.db.migrations.executor import MigrationExecutor
from django.views import static

from hsi.dispatch import start_local_pool, stop_local_pool

logger = logging.getLogger("hsi.serve")

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD_FILE = "admin_password"
STOP_TIMEOUT_SECONDS = 10.0


@dataclass
class BackgroundService:
    """A thread that runs beside daphne: ``run(stop)`` loops until ``stop`` is set."""

    name: str
    run: Callable[[threading.Event], None]
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=f"hsi-{self.name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.run(self.stop)
        except Exception:
            logger.exception("Background service %s stopped with an error", self.name)
        finally:
            connections.close_all()

    def shutdown(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout)
            if self.thread.is_alive():
                logger.warning("Background service %s did not stop within %.0f s", self.name, timeout)


def background_services(*, watcher: bool, ticker: bool) -> list[BackgroundService]:
    """The services started before daphne and stopped after it (in reverse order): the camera watcher (CONTRACT
    §4.1) and the ticker running the periodic jobs of §8.3."""
    services = []
    if watcher:
        services.append(BackgroundService("watcher", run_watcher))
    if ticker:
        services.append(BackgroundService("ticker", run_ticker))
    return services


def run_watcher(stop: threading.Event) -> None:
    """Watch ``FOSCAM_BASE_PATH`` until ``stop`` is set; accepted files go to the in-process task pool."""
    from pipeline.watcher import CameraWatcher

    CameraWatcher().run_forever(stop)


def run_ticker(stop: threading.Event) -> None:
    """Run the periodic jobs until ``stop`` is set; the first tick closes the batches a stop left open."""
    from hsi.schedule import Ticker

    Ticker().run(stop)


class CollectedStaticFilesHandler(ASGIStaticFilesHandler):
    """Serves ``STATIC_URL`` from ``STATIC_ROOT`` (what collectstatic wrote); daphne serves no static files."""

    def serve(self, request):
        relative = request.path.removeprefix(self.base_url.path)
        return static.serve(request, relative, document_root=settings.STATIC_ROOT)


class ListeningServer(Server):
    """daphne's Server, remembering a failure to listen (daphne itself only logs it and returns)."""

    listen_failure: str | None = None

    def listen_error(self, failure):
        self.listen_failure = failure.getErrorMessage()
        super().listen_error(failure)


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {value!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 1 and 65535, got {port}")
    return port


class Command(BaseCommand):
    help = "Run HSI all-in-one: migrations, admin account, static files, background services and daphne."
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=None, help="bind address (default HSI_HOST, 0.0.0.0)")
        parser.add_argument("--port", type=_port, default=None, help="TCP port (default HSI_PORT, 8000)")
        parser.add_argument("--no-watcher", action="store_true", help="do not watch the camera folders")
        parser.add_argument("--no-ticker", action="store_true", help="do not run the periodic jobs (§8.3)")
        parser.add_argument("--no-migrate", action="store_true", help="do not apply pending migrations")

    def handle(self, *args, **options) -> None:
        self.verbosity = options["verbosity"]
        host = options["host"] or settings.HSI_HOST
        port = options["port"] or settings.HSI_PORT
        try:
            self.prepare(migrate=not options["no_migrate"])
        except DatabaseError as exc:
            raise CommandError(f"The database is not usable: {exc}".strip()) from None
        except KeyboardInterrupt:
            raise CommandError("Interrupted before the server started.", returncode=130) from None
        services = background_services(watcher=not options["no_watcher"], ticker=not options["no_ticker"])
        self.print_banner(host, port, services)
        start_local_pool(settings.SERVE_WORKER_THREADS)
        for service in services:
            service.start()
        try:
            failure = self.run_daphne(host, port)
        finally:
            for service in reversed(services):
                service.shutdown()
            # Queued tasks are dropped, not lost: their files and batches are pending in the database and the
            # first ticks after a restart (close_expired_batches, reconcile) dispatch them again.
            stop_local_pool(wait=False)
            connections.close_all()
        if failure:
            raise CommandError(f"HSI did not start: {failure}")
        self.stdout.write("HSI stopped.")

    # --- start-up ----------------------------------------------------------------------------------------------

    def prepare(self, *, migrate: bool) -> None:
        self.make_directories()
        _run_tasks_in_process()
        if migrate:
            self.migrate()
        self.ensure_admin()
        call_command("collectstatic", interactive=False, verbosity=0)

    def make_directories(self) -> None:
        data_dir = Path(settings.HSI_DATA_DIR)
        wanted = [data_dir, data_dir / "thumbnails", data_dir / "snapshots", Path(settings.FOSCAM_BASE_PATH)]
        database = settings.DATABASES["default"]
        if database["ENGINE"].endswith("sqlite3") and str(database["NAME"]) != ":memory:":
            wanted.append(Path(database["NAME"]).parent)
        for directory in wanted:
            try:
                # A new data directory is private: it holds the database and the admin password.
                directory.mkdir(mode=0o700 if directory == data_dir else 0o777, parents=True, exist_ok=True)
            except OSError as exc:
                raise CommandError(f"Cannot create directory {directory}: {exc.strerror}") from None

    def migrate(self) -> None:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if not pending:
            return
        self.stdout.write(f"Applying {len(pending)} database migrations…")
        call_command("migrate", interactive=False, verbosity=max(self.verbosity - 1, 0))

    def ensure_admin(self) -> None:
        """On the first start (no superuser at all) create ``admin`` with a random password, shown once."""
        from django.contrib.auth import get_user_model

        user_model = get_user_model()
        if user_model.objects.filter(is_superuser=True).exists():
            return
        if user_model.objects.filter(**{user_model.USERNAME_FIELD: ADMIN_USERNAME}).exists():
            self.stderr.write(
                f"No superuser exists and a non-superuser {ADMIN_USERNAME!r} account is in the way: "
                "create an operator account with `python manage.py createsuperuser`."
            )
            return
        password = secrets.token_urlsafe(18)
        password_file = Path(settings.HSI_DATA_DIR) / ADMIN_PASSWORD_FILE
        with transaction.atomic():
            user_model.objects.create_superuser(ADMIN_USERNAME, email="", password=password)
            _write_secret(password_file, password)
        self.stdout.write(
            self.style.SUCCESS(
                f"Created the operator account {ADMIN_USERNAME!r} for /admin/ with password: {password}\n"
                f"It is shown only this once and saved to {password_file} (readable by you only)."
            )
        )

    def print_banner(self, host: str, port: int, services: list[BackgroundService]) -> None:
        url = f"http://{_browser_host(host)}:{port}"
        database = settings.DATABASES["default"]
        if database["ENGINE"].endswith("sqlite3"):
            database_text = f"SQLite {database['NAME']}"
        else:
            database_text = f"PostgreSQL {database.get('HOST') or 'local socket'}/{database['NAME']}"
        lines = [
            f"HSI {settings.HSI_VERSION} all-in-one on {url}/ (listening on {_display_host(host)}:{port})",
            f"  API docs {url}/api/docs   admin {url}/admin/   health {url}/health",
            f"  database: {database_text}",
            f"  redis: {'configured' if settings.REDIS_URL else 'disabled (in-process channel layer and cache)'}",
            f"  data: {settings.HSI_DATA_DIR}   cameras: {settings.FOSCAM_BASE_PATH}",
            f"  background: {', '.join(s.name for s in services) or 'none'}",
            f"  pipeline: {_pipeline_text()}",
            "Stop with CONTROL-C (SIGINT) or SIGTERM.",
        ]
        self.stdout.write("\n".join(lines))
        self.stdout.flush()

    # --- daphne ------------------------------------------------------------------------------------------------

    def run_daphne(self, host: str, port: int) -> str | None:
        """Serve until SIGINT/SIGTERM; returns the reason when daphne could not listen."""
        from channels.routing import get_default_application
        from daphne.access import AccessLogGenerator
        from daphne.endpoints import build_endpoint_description_strings

        server = ListeningServer(
            application=CollectedStaticFilesHandler(get_default_application()),
            endpoints=build_endpoint_description_strings(host=host, port=port),
            signal_handlers=True,
            action_logger=AccessLogGenerator(sys.stdout) if self.verbosity >= 2 else None,
            verbosity=self.verbosity,
            application_close_timeout=STOP_TIMEOUT_SECONDS,
            server_name="hsi",
        )
        server.run()
        return server.listen_failure


def _run_tasks_in_process() -> None:
    """``serve`` always runs Celery tasks in process, whatever CELERY_BROKER_URL says (CONTRACT §7)."""
    from hsi.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = True
    app.conf.task_always_eager = True
    if settings.LOG_LEVEL != "DEBUG":
        # Celery's "Task … succeeded" INFO line would print every few seconds (the ticker's jobs); failures, which
        # it logs at ERROR, still show.
        logging.getLogger("celery.app.trace").setLevel(logging.WARNING)


def _pipeline_text() -> str:
    """Which detector and analyzer the settings resolve to (CONTRACT §4.3, §4.6.1), and the task pool size."""
    from pipeline.analyzers import resolve_backend_name as analyzer_backend
    from pipeline.detectors import resolve_backend_name as detector_backend

    return f"detector {detector_backend()}, analyzer {analyzer_backend()}, {settings.SERVE_WORKER_THREADS} task threads"


def _write_secret(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text + "\n")
    path.chmod(0o600)


def _display_host(host: str) -> str:
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


def _browser_host(host: str) -> str:
    """The address a browser on this machine uses; ``ALLOWED_HOSTS`` accepts ``localhost`` by default."""
    if host in ("0.0.0.0", "::", "", "127.0.0.1", "::1", "localhost"):
        return "localhost"
    return _display_host(host)
