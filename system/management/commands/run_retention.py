"""``manage.py run_retention [--dry-run]`` (CONTRACT §8.1): one retention run (§4.13) now, with a progress line per
step on stderr and the summary on stdout. The audit row's actor is ``cli``."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from system.retention import COUNT_KEYS, retention_run
from system.services import Actor

STEP_LABELS = {
    "trashed_events_purged": "trashed events",
    "events_deleted": "events",
    "detections_deleted": "detections",
    "batches_deleted": "batches",
    "ingested_files_deleted": "ingested files",
    "entities_deleted": "entities",
    "logs_deleted": "log entries",
    "gpu_stats_deleted": "GPU stats",
    "audit_logs_deleted": "audit rows",
    "failed_jobs_deleted": "failed jobs",
    "orphan_thumbnails": "orphan thumbnails",
    "baselines": "baseline rebuild",
}
BAR_WIDTH = 30


class Command(BaseCommand):
    help = "Delete data older than its retention period (RETENTION_DAYS and friends); --dry-run only counts."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="count what would be deleted, change nothing")

    def handle(self, *args, dry_run: bool, **options) -> None:
        self._open_line = False
        result = retention_run(dry_run=dry_run, progress=self._progress, actor=Actor.system("cli"))
        self._end_line()
        verb = "Would delete" if dry_run else "Deleted"
        self.stdout.write(
            self.style.SUCCESS(f"{verb} ({'dry run' if dry_run else 'done'} in {result['duration_ms']} ms):")
        )
        width = max(len(key) for key in COUNT_KEYS)
        for key in COUNT_KEYS:
            self.stdout.write(f"  {key:<{width}}  {result[key]}")

    def _progress(self, step: str, done: int, total: int | None) -> None:
        if step == getattr(self, "_finished_step", None):
            return
        if step != getattr(self, "_step", None):
            self._end_line()
            self._step = step
        label = STEP_LABELS.get(step, step)
        if total:
            filled = min(BAR_WIDTH, BAR_WIDTH * done // total)
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            line = f"{label:<18} [{bar}] {done}/{total} ({100 * done // total}%)"
        else:
            line = f"{label:<18} {done}" if done or total == 0 else f"{label:<18} …"
        self.stderr.write(f"\r{line:<72}", ending="")
        self.stderr.flush()
        self._open_line = True
        if total is not None and done >= total:
            self._end_line()
            self._finished_step = step

    def _end_line(self) -> None:
        if self._open_line:
            self.stderr.write("")
            self._open_line = False
