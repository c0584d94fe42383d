"""The camera-folder watcher (CONTRACT §4.1, §10 on §4.1, §8.3 heartbeat).

watchdog (inotify, or polling) reports paths; ``StabilityTracker`` debounces them and waits until size and mtime
stop changing; stable files go to ``file_ingest``, files still changing at the timeout are recorded ``unstable``.
Because watchdog drops events on an inotify overflow, the tree is also rescanned every ``WATCHER_RESCAN_SECONDS``
for recent files (the start-up backfill is the first such scan); files already handled unchanged are skipped
without hashing, and dedup makes every repeat harmless.
"""

from __future__ import annotations

import logging
import os
import socket
import stat as stat_module
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections, connections
from django.utils import timezone
from watchdog.events import FileSystemEvent, FileSystemEventHandler

from cameras.models import Camera, resolve_folder
from hsi import dispatch
from hsi.timeutils import utc_iso
from pipeline.ingest import (
    ACCEPTED,
    BurstIngestError,
    IngestOutcome,
    file_ingest,
    file_record_unstable,
    files_ingest,
    is_accepted_path,
)
from pipeline.models import IngestedFile
from pipeline.task_names import PROCESS_FILE_TASK, PROCESS_FILES_TASK

logger = logging.getLogger("hsi.pipeline.watcher")

STABILITY_POLL_SECONDS = 0.5
HEARTBEAT_INTERVAL_SECONDS = 10
HEARTBEAT_TTL_SECONDS = 60
LOOP_INTERVAL_SECONDS = 0.1
ERROR_BACKOFF_SECONDS = 1.0
_DB_CHUNK = 500

Signature = tuple[int, int]  # (size, mtime_ns)


def heartbeat_key(host: str | None = None) -> str:
    return f"hsi:hb:watcher:{host or socket.gethostname()}"


# --- stability ---------------------------------------------------------------------------------------------------


@dataclass
class _Candidate:
    started: float
    due: float
    signature: Signature | None = None
    stable_since: float | None = None
    events_since: float | None = None  # start of the current run of events that kept the debounce from ending

    def __post_init__(self):
        if self.events_since is None:
            self.events_since = self.started


@dataclass(frozen=True)
class Settled:
    """Paths whose cycle ended in the last ``tick``: stable (ready to ingest), unstable (timed out), vanished."""

    stable: list[str] = field(default_factory=list)
    unstable: list[str] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)


class StabilityTracker:
    """Debounce and stability of candidate files, driven by an injected clock (no sleeping, no threads of its own).

    After the last ``touch`` of a path it waits ``debounce`` seconds, then polls size and mtime every
    ``poll_interval``; the file is stable once both stayed unchanged for ``stability`` seconds. A path seen
    changing (events that never let the debounce end, or a new size or mtime at a poll) ``timeout`` seconds after
    its cycle started is reported unstable; one merely looked at late is not. Thread-safe.
    """

    def __init__(
        self,
        *,
        debounce: float,
        stability: float,
        timeout: float,
        poll_interval: float = STABILITY_POLL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        stat: Callable[[str], os.stat_result] = os.stat,
    ):
        self.debounce = debounce
        self.stability = stability
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.clock = clock
        self.stat = stat
        self._candidates: dict[str, _Candidate] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._candidates)

    def __contains__(self, path: object) -> bool:
        return path in self._candidates

    def touch(self, path: str) -> None:
        """An event for ``path``: start its cycle, or restart the debounce and the stability measurement."""
        now = self.clock()
        with self._lock:
            candidate = self._candidates.get(path)
            if candidate is None:
                self._candidates[path] = _Candidate(started=now, due=now + self.debounce)
                return
            if now >= candidate.due:  # the debounce had ended: a new run of events starts here
                candidate.events_since = now
            candidate.due = now + self.debounce
            candidate.stable_since = None  # the measurement restarts; the last signature stays to compare with

    def add(self, path: str) -> bool:
        """Start a cycle for ``path`` unless one is running (scans must not push back a running debounce)."""
        with self._lock:
            if path in self._candidates:
                return False
            now = self.clock()
            self._candidates[path] = _Candidate(started=now, due=now + self.debounce)
            return True

    def tick(self) -> Settled:
        """Poll the candidates that are due; return (and forget) the ones whose cycle ended."""
        now = self.clock()
        settled = Settled()
        with self._lock:
            for path, candidate in list(self._candidates.items()):
                verdict = self._judge(path, candidate, now)
                if verdict is not None:
                    getattr(settled, verdict).append(path)
                    del self._candidates[path]
        return settled

    def _judge(self, path: str, candidate: _Candidate, now: float) -> str | None:
        if now < candidate.due:  # unstable only when events kept the debounce from ending for the whole timeout
            return "unstable" if now - candidate.events_since >= self.timeout else None
        try:
            status = self.stat(path)
        except OSError:
            return "vanished"
        if not stat_module.S_ISREG(status.st_mode):
            return "vanished"
        signature = (status.st_size, status.st_mtime_ns)
        changed = candidate.signature is not None and signature != candidate.signature
        if changed or candidate.stable_since is None:
            candidate.signature = signature
            candidate.stable_since = now
        # Unstable only when seen changing: a file first looked at late (a busy loop, a burst) gets its period.
        if changed and now - candidate.started >= self.timeout:
            return "unstable"
        if now - candidate.stable_since >= self.stability:
            return "stable"
        candidate.due = now + self.poll_interval
        return None


# --- watchdog glue -----------------------------------------------------------------------------------------------


class _EventHandler(FileSystemEventHandler):
    """Created, moved-into (destination) and modified files; a directory created or moved in is walked."""

    def __init__(self, watcher: CameraWatcher):
        self.watcher = watcher

    def on_created(self, event: FileSystemEvent) -> None:
        self.watcher.notice(os.fsdecode(event.src_path), directory=event.is_directory)

    def on_moved(self, event: FileSystemEvent) -> None:
        self.watcher.notice(os.fsdecode(event.dest_path), directory=event.is_directory)

    def on_modified(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self.watcher.notice(os.fsdecode(event.src_path), directory=False)

    def on_closed(self, event: FileSystemEvent) -> None:
        self.on_modified(event)


# --- the watcher -------------------------------------------------------------------------------------------------


class CameraWatcher:
    """Watches ``root`` (default ``FOSCAM_BASE_PATH``, which ingest maps cameras against) and ingests stable files.

    ``start()`` creates a missing root, starts the observer (``mode`` auto/native/polling, default
    ``WATCHER_MODE``), backfills recent files and writes the first heartbeat; ``run_forever()`` loops until
    ``stop()``; ``run_once()`` is one loop step (ticks the tracker, ingests, rescans and beats when due).
    """

    def __init__(
        self,
        root: Path | None = None,
        *,
        mode: str | None = None,
        ingest: Callable[..., IngestOutcome] = file_ingest,
        ingest_many: Callable[..., list[IngestOutcome]] = files_ingest,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        record_unstable: Callable[..., IngestOutcome] = file_record_unstable,
    ):
        self.root = Path(root if root is not None else settings.FOSCAM_BASE_PATH)
        self.requested_mode = mode or settings.WATCHER_MODE
        self.mode: str | None = None
        self.ingest = ingest
        self.ingest_many = ingest_many
        self.record_unstable = record_unstable
        self.clock = clock
        self.wall_clock = wall_clock
        self.host = socket.gethostname()
        self.tracker = StabilityTracker(
            debounce=settings.WATCHER_DEBOUNCE_SECONDS,
            stability=settings.FILE_STABILITY_SECONDS,
            timeout=settings.FILE_STABILITY_TIMEOUT_SECONDS,
            clock=clock,
        )
        self.last_file_at = None
        self._seen: dict[str, Signature] = {}
        self._stop = threading.Event()
        self._observer = None
        self._next_rescan = 0.0
        self._next_heartbeat = 0.0

    @property
    def pending_count(self) -> int:
        return len(self.tracker)

    @property
    def started(self) -> bool:
        return self._observer is not None

    # --- life cycle ---------------------------------------------------------------------------------------------

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._stop.clear()
        self._observer = self._start_observer()
        queued = self.scan(settings.WATCHER_BACKFILL_MINUTES)
        logger.info("Watching %s (%s); %d recent files queued by the backfill", self.root, self.mode, queued)
        now = self.clock()
        self._next_rescan = now + settings.WATCHER_RESCAN_SECONDS
        self._next_heartbeat = now
        self.heartbeat()

    def stop(self) -> None:
        """Ask ``run_forever`` to return (safe from any thread or a signal handler)."""
        self._stop.set()

    def run_forever(self, stop: threading.Event | None = None) -> None:
        """Start if needed, then loop until ``stop()`` (or ``stop`` is set); always releases the observer."""
        try:
            if not self.started:
                self.start()
            while not self._should_stop(stop):
                try:
                    close_old_connections()
                    self.run_once()
                except Exception:
                    logger.exception("Watcher step failed; continuing")
                    self._stop.wait(ERROR_BACKOFF_SECONDS)
                self._stop.wait(LOOP_INTERVAL_SECONDS)
        finally:
            self.shutdown()
            connections.close_all()

    def shutdown(self) -> None:
        """Stop the observer and withdraw the heartbeat."""
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(timeout=5)
        try:
            cache.delete(heartbeat_key(self.host))
        except Exception:
            logger.warning("Could not remove the watcher heartbeat", exc_info=True)

    def _should_stop(self, stop: threading.Event | None) -> bool:
        return self._stop.is_set() or (stop is not None and stop.is_set())

    def _start_observer(self):
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        handler = _EventHandler(self)
        if self.requested_mode in ("auto", "native"):
            observer = Observer()
            try:
                observer.schedule(handler, str(self.root), recursive=True)
                observer.start()
            except Exception as error:
                if self.requested_mode == "native":
                    raise
                logger.warning("Native file watching is unavailable (%s); falling back to polling", error)
            else:
                self.mode = "native"
                return observer
        observer = PollingObserver(timeout=settings.WATCHER_POLL_INTERVAL_SECONDS)
        observer.schedule(handler, str(self.root), recursive=True)
        observer.start()
        self.mode = "polling"
        return observer

    # --- one step -----------------------------------------------------------------------------------------------

    def run_once(self) -> None:
        settled = self.tracker.tick()
        # A burst (an FTP backlog, a rescan after an outage) is ingested and processed in chunks; a lone file goes
        # on its own.
        size = settings.PIPELINE_CHUNK_FILES
        with dispatch.coalesced(PROCESS_FILE_TASK, PROCESS_FILES_TASK, size=size):
            for start in range(0, len(settled.stable), size):
                self._ingest_burst(settled.stable[start : start + size])
        for path in settled.unstable:
            self._record_unstable(path)
        now = self.clock()
        if now >= self._next_rescan:
            self._next_rescan = now + settings.WATCHER_RESCAN_SECONDS
            self.scan(settings.WATCHER_BACKFILL_MINUTES)
        if now >= self._next_heartbeat:
            self.heartbeat()

    def notice(self, path: str, *, directory: bool = False) -> None:
        """A file-system event for ``path`` (called from the observer thread)."""
        if directory:
            for file_path in self._files_under(Path(path)):
                self.tracker.touch(file_path)
        elif is_accepted_path(path, self.root):
            self.tracker.touch(path)

    def _ingest_burst(self, paths: list[str]) -> None:
        if len(paths) == 1:
            self._ingest(paths[0])
            return
        signatures = {}
        for path in paths:
            try:
                signatures[path] = _signature(os.stat(path))
            except OSError:
                continue
        try:
            outcomes = self.ingest_many(
                list(signatures), source="watcher", recheck_truncated=self._wait_one_stability_period
            )
        except BurstIngestError as partial:  # the rest is recorded: the failed ones wait for the next rescan
            for index, error in partial.errors.items():
                logger.error("Ingest of %s failed", list(signatures)[index], exc_info=error)
            outcomes = list(partial.outcomes.values())
            signatures = {path: s for index, (path, s) in enumerate(signatures.items()) if index in partial.outcomes}
        except Exception:
            logger.exception("Ingest of a burst of %d files failed; ingesting them one by one", len(signatures))
            for path in signatures:  # one bad file (unreadable, say) must not hold the others back; dedup makes
                self._ingest(path)  # a repeat of what the burst recorded before failing harmless
            return
        self._seen.update(signatures)
        if any(outcome.result == ACCEPTED for outcome in outcomes):
            self.last_file_at = timezone.now()

    def _ingest(self, path: str) -> None:
        try:
            signature = _signature(os.stat(path))
        except OSError:
            return
        try:
            outcome = self.ingest(path, source="watcher", recheck_truncated=self._wait_one_stability_period)
        except Exception:
            # Not remembered as seen: the next rescan offers the file again.
            logger.exception("Ingest of %s failed", path)
            return
        self._seen[path] = signature
        if outcome.result == ACCEPTED:
            self.last_file_at = timezone.now()

    def _record_unstable(self, path: str) -> None:
        logger.warning("%s kept changing for %.0f s; recording it as unstable", path, self.tracker.timeout)
        try:
            signature = _signature(os.stat(path))
            self.record_unstable(path, source="watcher")
        except FileNotFoundError:
            return
        except Exception:
            logger.exception("Could not record unstable file %s", path)
            return
        self._seen[path] = signature

    def _wait_one_stability_period(self) -> None:
        self._stop.wait(settings.FILE_STABILITY_SECONDS)

    # --- scans --------------------------------------------------------------------------------------------------

    def scan(self, backfill_minutes: float) -> int:
        """Queue accepted files modified within the last ``backfill_minutes`` that were not already handled
        unchanged (same path, size and mtime); returns how many were queued. Older files are never scanned."""
        if backfill_minutes <= 0 or not self.root.is_dir():
            return 0
        cutoff = self.wall_clock() - backfill_minutes * 60
        self._forget_seen_before(cutoff)
        fresh = {}
        for path in self._files_under(self.root):
            try:
                status = os.stat(path)
            except OSError:
                continue
            if not stat_module.S_ISREG(status.st_mode) or status.st_mtime < cutoff:
                continue
            if self._seen.get(path) == _signature(status) or path in self.tracker:
                continue
            fresh[path] = status
        for path in self._already_recorded(fresh):
            self._seen[path] = _signature(fresh.pop(path))
        return sum(self.tracker.add(path) for path in fresh)

    def _files_under(self, directory: Path) -> Iterable[str]:
        """Accepted files below ``directory`` (hidden folders are not entered)."""
        for folder, subfolders, names in os.walk(directory):
            subfolders[:] = [name for name in subfolders if not name.startswith(".")]
            for name in names:
                path = os.path.join(folder, name)
                if is_accepted_path(path, self.root):
                    yield path

    def _already_recorded(self, candidates: dict[str, os.stat_result]) -> list[str]:
        """Candidates with an IngestedFile of the same path and size received after their last modification."""
        recorded = []
        paths = list(candidates)
        for start in range(0, len(paths), _DB_CHUNK):
            rows = IngestedFile.objects.filter(path__in=paths[start : start + _DB_CHUNK])
            for path, size, received_at in rows.values_list("path", "size_bytes", "received_at"):
                status = candidates[path]
                if size == status.st_size and received_at.timestamp() >= status.st_mtime:
                    recorded.append(path)
        return list(dict.fromkeys(recorded))

    def _forget_seen_before(self, cutoff: float) -> None:
        cutoff_ns = int(cutoff * 1_000_000_000)
        for path, (_size, mtime_ns) in list(self._seen.items()):
            if mtime_ns < cutoff_ns:
                del self._seen[path]

    # --- heartbeat ----------------------------------------------------------------------------------------------

    def heartbeat(self) -> dict:
        """Write ``hsi:hb:watcher:<host>`` (TTL 60 s) and schedule the next one in 10 s."""
        self._next_heartbeat = self.clock() + HEARTBEAT_INTERVAL_SECONDS
        beat = {
            "host": self.host,
            "running": self.started,
            "mode": self.mode,
            "root": str(self.root),
            "cameras_watched": self._cameras_watched(),
            "pending_files": self.pending_count,
            "last_file_at": utc_iso(self.last_file_at),
            "heartbeat_at": utc_iso(timezone.now()),
        }
        try:
            cache.set(heartbeat_key(self.host), beat, HEARTBEAT_TTL_SECONDS)
        except Exception:
            logger.warning("Could not write the watcher heartbeat", exc_info=True)
        return beat

    def _cameras_watched(self) -> int:
        """Enabled cameras whose folder lies inside the watched root."""
        root = Path(os.path.normpath(os.path.abspath(self.root)))
        folders = Camera.objects.filter(enabled=True).values_list("folder_path", flat=True)
        return sum(1 for folder in folders if resolve_folder(folder).is_relative_to(root))


def run_watcher(stop: threading.Event) -> None:
    """Run a watcher until ``stop`` is set (the ``serve`` background service, CONTRACT §8.1)."""
    CameraWatcher().run_forever(stop)


def _signature(status: os.stat_result) -> Signature:
    return (status.st_size, status.st_mtime_ns)
