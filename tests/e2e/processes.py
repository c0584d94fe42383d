"""Real processes of the distributed run mode (CONTRACT §0.1, §8.1) for the e2e and fault tests.

``Deployment`` is one install: a PostgreSQL database, a Redis key prefix of its own (cache, channel layer and
Celery queues), a camera root, a data directory, the loopback fakes' URLs and the settings the test wants. It
starts, as child processes of the test, any number of Celery workers, one beat, the camera watcher and a web
process, each in its own session (process group) so ``kill()`` is a ``kill -9`` of the worker and its pool
children together. Every child logs to a file in the test's tmp directory; ``Deployment.logs()`` returns them
all for a failure message.

Nothing here sleeps to wait for something: ``wait_for`` polls a condition up to a deadline.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 20.0
POLL_SECONDS = 0.1
ALL_QUEUES = "detection,analysis,notifications,default"

# Variables of the test process that must not leak into a child (they belong to the test harness).
_STRIPPED_VARIABLES = ("CELERY_BROKER_URL", "PROMETHEUS_MULTIPROC_DIR", "DEBUG", "API_KEY_ENABLED", "API_KEYS")

# Short timings: batches close within seconds, retries back off in milliseconds, the watcher reacts at once.
FAST_SETTINGS: dict[str, str] = {
    "WATCHER_MODE": "auto",
    "WATCHER_POLL_INTERVAL_SECONDS": "0.2",
    "WATCHER_DEBOUNCE_SECONDS": "0.1",
    "FILE_STABILITY_SECONDS": "0.3",
    "FILE_STABILITY_TIMEOUT_SECONDS": "10",
    "WATCHER_BACKFILL_MINUTES": "10",
    "WATCHER_RESCAN_SECONDS": "60",
    "BATCH_WINDOW_SECONDS": "6",
    "BATCH_IDLE_TIMEOUT_SECONDS": "3",
    "BATCH_MAX_DETECTIONS": "10",
    "BATCH_CHECK_INTERVAL_SECONDS": "0.5",
    "FAST_PATH_COOLDOWN_SECONDS": "90",
    "RETRY_BASE_DELAY_SECONDS": "0.05",
    "RETRY_MAX_DELAY_SECONDS": "0.2",
    "RETRY_JITTER": "0",
    "PIPELINE_MAX_RETRIES": "3",
    "LLM_MAX_RETRIES": "1",
    "LLM_TIMEOUT_SECONDS": "10",
    "DETECTOR_TIMEOUT_SECONDS": "10",
    "CIRCUIT_FAILURE_THRESHOLD": "5",
    "CIRCUIT_RECOVERY_SECONDS": "1",
    "FILE_STUCK_SECONDS": "4",
    "ANALYSIS_STUCK_SECONDS": "6",
    "THROTTLE_ENABLED": "false",
    "NOTIFICATIONS_ENABLED": "false",
    "GPU_MONITOR_ENABLED": "false",
    "LOG_LEVEL": "info",
    "LOG_DB_MIN_LEVEL": "error",
}


class ProcessFailed(AssertionError):
    """A child process exited, or did not become ready, when the test needed it."""


def wait_for(
    condition: Callable[[], object], *, timeout: float, what: str, on_timeout: Callable[[], str] | None = None
):
    """Poll ``condition`` until it returns a truthy value (returned) or ``timeout`` seconds pass (AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = on_timeout() if on_timeout else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
        time.sleep(POLL_SECONDS)


def daytime_zone(now: dt.datetime | None = None) -> str:
    """A fixed-offset zone in which it is about noon now, so the rules analyzer's night bonus never applies."""
    hour = (now or dt.datetime.now(dt.UTC)).hour
    offset = 12 - hour  # -11 .. +12: every such Etc zone exists
    if offset == 0:
        return "UTC"
    return f"Etc/GMT-{offset}" if offset > 0 else f"Etc/GMT+{-offset}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_url(settings_dict: dict) -> str:
    """A ``postgres://`` URL for a Django database settings dict (the test database, as pytest-django named it)."""
    user = quote(settings_dict.get("USER") or "", safe="")
    password = settings_dict.get("PASSWORD") or ""
    credentials = f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or "5432"
    return f"postgres://{credentials}{host}:{port}/{settings_dict['NAME']}"


@dataclass
class ChildProcess:
    """One child process in its own session; ``stop()`` is SIGTERM then SIGKILL, ``kill()`` is ``kill -9``."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    ready: Callable[[ChildProcess], bool] | None = None
    popen: subprocess.Popen | None = None
    _terminated: bool = False

    def start(self, *, wait: bool = True) -> ChildProcess:
        """Start the process; with ``wait`` (default) return once it is ready (see ``wait_ready``)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start {self.name}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self._terminated = False
            self.popen = subprocess.Popen(
                self.argv,
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT_SECONDS) -> ChildProcess:
        """Return once the readiness check passes; ``ProcessFailed`` if the process exits first."""
        if self.ready is not None:
            wait_for(self._ready_or_raise, timeout=timeout, what=f"{self.name} to be ready", on_timeout=self._tail)
        return self

    def _ready_or_raise(self) -> bool:
        if not self.alive:
            raise ProcessFailed(f"{self.name} exited with {self.popen.returncode} before it was ready{self._tail()}")
        return self.ready(self)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_contains(self, pattern: str, *, since: int = 0) -> bool:
        return re.search(pattern, self.output()[since:]) is not None

    def _tail(self, lines: int = 60) -> str:
        return f"\n--- last lines of {self.log_path.name} ---\n" + "\n".join(self.output().splitlines()[-lines:])

    def kill(self) -> None:
        """``kill -9`` of the whole process group (a prefork worker's pool children included)."""
        if self.popen is None:
            return
        _signal_group(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=STOP_TIMEOUT_SECONDS)

    def terminate(self) -> None:
        """SIGTERM to the group without waiting (``stop`` waits)."""
        if self.alive and not self._terminated:
            self._terminated = True
            _signal_group(self.popen.pid, signal.SIGTERM)

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int | None:
        """SIGTERM to the group, then SIGKILL if it is still running after ``timeout`` seconds."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=timeout)
        _signal_group(self.popen.pid, signal.SIGKILL)  # leftovers of the group (pool children)
        return self.popen.returncode


def _signal_group(pgid: int, signal_number: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal_number)


def _log_line(pattern: str) -> Callable[[ChildProcess], bool]:
    compiled = re.compile(pattern)

    def ready(process: ChildProcess) -> bool:
        return compiled.search(process.output()) is not None

    return ready


@dataclass
class Deployment:
    """One distributed install run by the test: shared database, own Redis prefix, own folders."""

    database_url: str
    redis_url: str
    workdir: Path
    foscam_root: Path
    data_dir: Path
    settings: dict[str, str] = field(default_factory=dict)
    key_prefix: str = field(default_factory=lambda: f"hsi-e2e:{uuid.uuid4().hex[:10]}")  # per test: see conftest
    processes: list[ChildProcess] = field(default_factory=list)

    # --- environment -----------------------------------------------------------------------------------------
    def environment(self, **extra: str) -> dict[str, str]:
        environment = {k: v for k, v in os.environ.items() if k not in _STRIPPED_VARIABLES}
        environment.update(
            DJANGO_SETTINGS_MODULE="hsi.settings",
            SECRET_KEY="e2e-distributed-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
            PYTHONUNBUFFERED="1",
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            HSI_KEY_PREFIX=self.key_prefix,
            FOSCAM_BASE_PATH=str(self.foscam_root),
            HSI_DATA_DIR=str(self.data_dir),
        )
        environment.update(FAST_SETTINGS)
        environment.update(self.settings)
        environment.update(extra)
        return {k: v for k, v in environment.items() if v is not None}

    # --- processes -------------------------------------------------------------------------------------------
    def _spawn(
        self, name: str, argv: list[str], ready, *, env: dict[str, str] | None = None, wait: bool = True
    ) -> ChildProcess:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        process = ChildProcess(
            name=name,
            argv=argv,
            env=env or self.environment(),
            log_path=self.workdir / "logs" / f"{safe}.log",
            ready=ready,
        )
        self.processes.append(process)
        return process.start(wait=wait)

    def worker(
        self,
        *,
        pool: str = "threads",
        concurrency: int = 4,
        queues: str = ALL_QUEUES,
        name: str | None = None,
        wait: bool = True,
        **env: str,
    ) -> ChildProcess:
        """``celery -A hsi worker`` consuming every queue; ready once Celery logs ``<hostname> ready.``."""
        node = name or f"w{sum(p.name.startswith('worker') for p in self.processes) + 1}"
        hostname = f"{node}.{self.key_prefix.rsplit(':', 1)[-1]}@{socket.gethostname()}"
        argv = [sys.executable, "-m", "celery", "-A", "hsi", "worker", "-Q", queues, "--pool", pool]
        argv += ["-c", str(concurrency), "-n", hostname, "-l", "info", "--without-mingle", "--without-gossip"]
        ready = _log_line(r"@\S+ ready\.")
        return self._spawn(f"worker-{node}", argv, ready, env=self.environment(**env), wait=wait)

    def beat(self, *, wait: bool = True, **env: str) -> ChildProcess:
        """``celery -A hsi beat`` with its schedule file in the work directory; ready once it starts ticking."""
        schedule = self.workdir / f"beat-schedule-{uuid.uuid4().hex[:6]}"
        argv = [sys.executable, "-m", "celery", "-A", "hsi", "beat", "-l", "info", "-s", str(schedule)]
        return self._spawn("beat", argv, _log_line(r"beat: Starting"), env=self.environment(**env), wait=wait)

    def watcher(self, *, polling: bool = False, wait: bool = True, **env: str) -> ChildProcess:
        """``manage.py watch_cameras``; ready once its heartbeat is in the cache (written after the backfill scan)."""
        argv = [sys.executable, "manage.py", "watch_cameras", *(["--polling"] if polling else [])]
        ready = lambda _process: self.heartbeat_exists("watcher")  # noqa: E731
        return self._spawn("watcher", argv, ready, env=self.environment(**env), wait=wait)

    def web(self, *, wait: bool = True, **env: str) -> WebProcess:
        """``daphne hsi.asgi:application`` on a free loopback port; ready once ``/health`` answers 200."""
        port = free_port()
        argv = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "hsi.asgi:application"]
        base_url = f"http://127.0.0.1:{port}"
        ready = lambda _process: _answers(f"{base_url}/health")  # noqa: E731
        process = self._spawn("web", argv, ready, env=self.environment(**env), wait=wait)
        return WebProcess(process=process, base_url=base_url)

    def start(self, *, web: bool = False, **worker_options) -> Stack:
        """A worker, beat and the watcher (and a web process), started together; returns once all are ready."""
        stack = Stack(
            worker=self.worker(wait=False, **worker_options),
            beat=self.beat(wait=False),
            watcher=self.watcher(wait=False),
            web=self.web(wait=False) if web else None,
        )
        for process in stack.processes():
            process.wait_ready()
        return stack

    def stop_all(self) -> None:
        """SIGTERM to every process at once, then wait for each (SIGKILL past the stop timeout)."""
        for process in self.processes:
            process.terminate()
        for process in reversed(self.processes):
            process.stop()

    def logs(self, lines: int = 80) -> str:
        parts = []
        for path in sorted({p.log_path for p in self.processes}):
            text = path.read_text(errors="replace").splitlines() if path.exists() else []
            parts.append(f"\n===== {path.name} (last {lines} lines) =====\n" + "\n".join(text[-lines:]))
        return "".join(parts)

    # --- Redis -----------------------------------------------------------------------------------------------
    def redis(self):
        import redis

        return redis.Redis.from_url(self.redis_url)

    def prefixed_keys(self) -> list[bytes]:
        client = self.redis()
        try:
            return list(client.scan_iter(match=f"{self.key_prefix}*", count=1000))
        finally:
            client.close()

    def delete_redis_keys(self) -> list[str]:
        """Delete every key of this deployment (cache, dedup, breakers, Celery queues and bindings): what a Redis
        restarting empty does to it, without touching other tests' keys. Returns the keys deleted."""
        client = self.redis()
        try:
            keys = list(client.scan_iter(match=f"{self.key_prefix}*", count=1000))
            for start in range(0, len(keys), 500):
                client.delete(*keys[start : start + 500])
            return [key.decode() for key in keys]
        finally:
            client.close()

    def heartbeat_exists(self, kind: str) -> bool:
        """Whether a ``hsi:hb:<kind>...`` heartbeat written through the Django cache (this prefix) exists."""
        client = self.redis()
        try:
            return any(True for _ in client.scan_iter(match=f"{self.key_prefix}:*hsi:hb:{kind}*", count=1000))
        finally:
            client.close()

    def queue_lengths(self) -> dict[str, int]:
        """Messages waiting per Celery queue of this deployment."""
        client = self.redis()
        try:
            return {q: int(client.llen(f"{self.key_prefix}:celery:{q}")) for q in ALL_QUEUES.split(",")}
        finally:
            client.close()

    def send_task(self, task_name: str, *args, queue: str = "default") -> None:
        """Publish ``task_name(*args)`` to this deployment's broker, as beat or another process would."""
        from celery import Celery

        app = Celery("hsi-e2e-client", broker=self.redis_url, set_as_current=False)
        app.conf.broker_transport_options = {"global_keyprefix": f"{self.key_prefix}:celery:"}
        app.conf.task_default_queue = "default"
        try:
            app.send_task(task_name, args=list(args), queue=queue)
        finally:
            app.close()


@dataclass
class WebProcess:
    process: ChildProcess
    base_url: str

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30)

    def wait_ready(self) -> WebProcess:
        self.process.wait_ready()
        return self


@dataclass
class Stack:
    """The processes of one distributed install: worker, beat, watcher and, when asked for, a web process."""

    worker: ChildProcess
    beat: ChildProcess
    watcher: ChildProcess
    web: WebProcess | None = None

    def processes(self) -> list:
        return [p for p in (self.worker, self.beat, self.watcher, self.web) if p is not None]


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


# --- files in ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dropped:
    """One file the test wrote into a camera folder and what the fake detector finds in it."""

    path: Path
    camera_folder: str
    sha256: str
    detections: tuple[dict, ...]
    expected_status: str  # the IngestedFile status it must end in


class Drops:
    """The files a test drops into ``<root>/<camera folder>/``; also the fake detector's answer for each.

    Files are written the way an FTP upload that renames on completion is: to a hidden name first, then renamed
    into place (the watcher ignores dot-names). ``detect`` is a ``FakeDetector.detect_fn``: it answers by content
    hash, so a renamed copy of a file gets the same answer as the original.
    """

    def __init__(self, root: Path, *, width: int = 320, height: int = 240):
        self.root = root
        self.width = width
        self.height = height
        self.files: list[Dropped] = []
        self._by_sha: dict[str, tuple[dict, ...]] = {}
        self._seed = int(uuid.uuid4().int % 1_000_000_000)
        self._lock = threading.Lock()

    def image(self, camera_folder: str, name: str, detections=(), *, subfolder: str = "") -> Dropped:
        from tests.images import jpeg_bytes

        with self._lock:
            self._seed += 1
            seed = self._seed
        data = jpeg_bytes(self.width, self.height, seed=seed)
        status = "processed" if detections else "no_detections"
        return self._record(camera_folder, name, data, tuple(detections), status, subfolder)

    def invalid(self, camera_folder: str, name: str) -> Dropped:
        """A JPEG far below ``MIN_IMAGE_BYTES``: recorded as ``invalid`` (``too_small``), never detected."""
        from tests.images import jpeg_bytes

        data = jpeg_bytes(16, 16, seed=1)
        return self._record(camera_folder, name, data, (), "invalid", "")

    def copy(self, original: Dropped, name: str) -> Path:
        """A byte-identical copy under another name (a replayed upload): must dedup, creating no row."""
        return write_atomically(original.path.with_name(name), original.path.read_bytes())

    def rewrite(self, original: Dropped) -> Path:
        """The same bytes written again to the same path (a camera re-sending a file)."""
        return write_atomically(original.path, original.path.read_bytes())

    def _record(self, camera_folder, name, data, detections, status, subfolder) -> Dropped:
        folder = self.root / camera_folder / subfolder if subfolder else self.root / camera_folder
        sha = hashlib.sha256(data).hexdigest()
        with self._lock:
            self._by_sha[sha] = detections
        dropped = Dropped(write_atomically(folder / name, data), camera_folder, sha, detections, status)
        with self._lock:
            self.files.append(dropped)
        return dropped

    def detect(self, _filename: str, content: bytes) -> list[dict]:
        return [dict(d) for d in self._by_sha.get(hashlib.sha256(content).hexdigest(), ())]

    @property
    def expected_detections(self) -> int:
        return sum(len(d.detections) for d in self.files)


def write_atomically(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}")
    temporary.write_bytes(data)
    os.replace(temporary, path)
    return path


def box(cls: str, confidence: float, x: int = 40, y: int = 30, width: int = 80, height: int = 160) -> dict:
    """One detection as the HTTP detector answers it (bbox inside a 320×240 frame)."""
    return {"class": cls, "confidence": confidence, "bbox": {"x": x, "y": y, "width": width, "height": height}}


# --- rows out ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ledger:
    """What the pipeline made of the dropped files, read from PostgreSQL."""

    files_by_status: dict[str, int]
    file_rows_by_sha: dict[str, int]
    detections: int
    detections_by_sha: dict[str, int]
    linked_detections: int
    unlinked_detections: int
    events: int
    batches_by_status: dict[str, int]
    events_without_batch: int
    failed_jobs: int
    failed_job_file_ids: tuple[int, ...]

    @property
    def files(self) -> int:
        return sum(self.files_by_status.values())

    @property
    def in_flight(self) -> int:
        """Files not yet in a final state, plus batches not yet analysed (or failed)."""
        files = self.files_by_status.get("pending", 0) + self.files_by_status.get("processing", 0)
        return files + sum(n for status, n in self.batches_by_status.items() if status not in ("done", "failed"))


def read_ledger() -> Ledger:
    """Every count from one snapshot (REPEATABLE READ on PostgreSQL): the processes keep committing while the
    counts are read, and counts taken at different moments could disagree (a detection counted before its event
    committed and its link after)."""
    from django.db import connection, transaction

    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return _read_ledger()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        return _read_ledger()


def _read_ledger() -> Ledger:
    from django.db.models import Count

    from events.models import Detection, Event, EventDetection
    from pipeline.models import Batch, FailedJob, IngestedFile

    files_by_status = dict(IngestedFile.objects.values_list("status").annotate(n=Count("id")).order_by())
    file_rows_by_sha = dict(
        IngestedFile.objects.exclude(sha256=None).values_list("sha256").annotate(n=Count("id")).order_by()
    )
    detections_by_sha = dict(Detection.objects.values_list("source_file__sha256").annotate(n=Count("id")).order_by())
    detections = Detection.objects.count()
    linked = EventDetection.objects.count()
    return Ledger(
        files_by_status=files_by_status,
        file_rows_by_sha=file_rows_by_sha,
        detections=detections,
        detections_by_sha=detections_by_sha,
        linked_detections=linked,
        unlinked_detections=Detection.objects.filter(event_link__isnull=True).count(),
        events=Event.objects.count(),
        batches_by_status=dict(Batch.objects.values_list("status").annotate(n=Count("id")).order_by()),
        events_without_batch=Event.objects.filter(batch__isnull=True).count(),
        failed_jobs=FailedJob.objects.count(),
        failed_job_file_ids=tuple(
            sorted(
                int(p["file_id"])
                for p in FailedJob.objects.filter(queue="detection").values_list("payload", flat=True)
                if isinstance(p, dict) and "file_id" in p
            )
        ),
    )


def settled(drops: Drops, *, failed: int = 0) -> Callable[[], Ledger | None]:
    """A ``wait_for`` condition: every dropped file has its row in a final state, every detection is in an event
    and every batch is analysed — returns the ledger then, else None."""

    def check() -> Ledger | None:
        ledger = read_ledger()
        expected_rows = len({d.sha256 for d in drops.files})
        done = (
            ledger.files >= expected_rows
            and ledger.in_flight == 0
            and ledger.detections >= drops.expected_detections - failed_detections(drops, ledger)
            and ledger.unlinked_detections == 0
            and ledger.failed_jobs >= failed
        )
        return ledger if done else None

    return check


def failed_detections(drops: Drops, ledger: Ledger) -> int:
    """Detections the dropped files would have had, for the files that ended in the DLQ."""
    failed_shas = _failed_shas(ledger)
    return sum(len(d.detections) for d in drops.files if d.sha256 in failed_shas)


def _failed_shas(ledger: Ledger) -> set[str]:
    from pipeline.models import IngestedFile

    return set(IngestedFile.objects.filter(id__in=ledger.failed_job_file_ids).values_list("sha256", flat=True))


def assert_nothing_lost_or_duplicated(drops: Drops, ledger: Ledger, *, failed: int = 0) -> None:
    """Files in vs. rows out: one row per distinct file, each in its expected final state (or in the DLQ), exactly
    the detections the detector reported for it, each in exactly one event; ``failed`` DLQ rows, no more."""
    from pipeline.models import IngestedFile

    expected_shas = {d.sha256 for d in drops.files}
    assert set(ledger.file_rows_by_sha) == expected_shas, "a dropped file has no row, or a row has no dropped file"
    duplicated_rows = {sha: n for sha, n in ledger.file_rows_by_sha.items() if n != 1}
    assert not duplicated_rows, f"files recorded more than once: {duplicated_rows}"
    assert ledger.failed_jobs == failed, f"DLQ rows: {ledger.failed_jobs}, expected {failed}"
    failed_shas = _failed_shas(ledger)
    status_by_sha = dict(IngestedFile.objects.values_list("sha256", "status"))
    wrong_status = {
        d.path.name: status_by_sha.get(d.sha256)
        for d in drops.files
        if status_by_sha.get(d.sha256) != ("failed" if d.sha256 in failed_shas else d.expected_status)
    }
    assert not wrong_status, f"files in an unexpected state: {wrong_status}"
    wrong_counts = {
        d.path.name: (ledger.detections_by_sha.get(d.sha256, 0), len(d.detections))
        for d in drops.files
        if d.sha256 not in failed_shas and ledger.detections_by_sha.get(d.sha256, 0) != len(d.detections)
    }
    assert not wrong_counts, f"detections per file (stored, reported by the detector): {wrong_counts}"
    assert ledger.detections == drops.expected_detections - failed_detections(drops, ledger)
    assert ledger.unlinked_detections == 0, f"{ledger.unlinked_detections} detections are in no event"
    assert ledger.linked_detections == ledger.detections
    assert ledger.events_without_batch == 0
    assert set(ledger.batches_by_status) <= {"done"}, f"batches not done: {ledger.batches_by_status}"
    assert ledger.events == ledger.batches_by_status.get("done", 0), "one event per analysed batch"


# --- the sweeper ---------------------------------------------------------------------------------------------


class Sweeper:
    """Sends ``pipeline.reconcile`` to the deployment's broker every ``interval`` seconds while active.

    Beat sends it every 60 s (``PERIODIC_JOBS``, not configurable); a fault test plays a beat with a short
    reconcile interval instead of waiting a minute per fault.
    """

    def __init__(self, deployment: Deployment, interval: float = 2.0):
        self.deployment = deployment
        self.interval = interval
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="e2e-sweeper", daemon=True)

    def __enter__(self) -> Sweeper:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.deployment.send_task("pipeline.reconcile")
            self.sent += 1
