"""``manage.py seed_demo [--cameras N] [--events N] [--days N] [--clear] [--with-media]`` (CONTRACT §8.1).

Same behaviour as ``POST /api/admin/seed`` without the DEBUG guard; the audit row's actor is ``cli``.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from system.seeding import SEED_DEFAULTS, SEED_LIMITS, demo_seed, seed_option_errors
from system.services import Actor


class Command(BaseCommand):
    help = "Create demo cameras, events, detections and alerts (see POST /api/admin/seed)."

    def add_arguments(self, parser: CommandParser) -> None:
        for name, noun in (("cameras", "demo cameras"), ("events", "events"), ("days", "days to spread events over")):
            low, high = SEED_LIMITS[name]
            parser.add_argument(
                f"--{name}",
                type=int,
                default=SEED_DEFAULTS[name],
                metavar="N",
                help=f"number of {noun}, {low}–{high} (default {SEED_DEFAULTS[name]})",
            )
        parser.add_argument("--clear", action="store_true", help="delete existing event and pipeline data first")
        parser.add_argument(
            "--with-media", action="store_true", help="write a generated JPEG per detection into the camera folders"
        )

    def handle(self, *args, cameras: int, events: int, days: int, clear: bool, with_media: bool, **options) -> None:
        errors = seed_option_errors(cameras=cameras, events=events, days=days)
        if errors:
            raise CommandError("; ".join(f"--{name}: {message}" for name, message in errors.items()))
        result = demo_seed(
            cameras=cameras,
            events=events,
            days=days,
            clear_existing=clear,
            create_media=with_media,
            actor=Actor.system("cli"),
        )
        cleared = "Cleared existing data. " if result["cleared"] else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"{cleared}Seeded {result['cameras_created']} new camera(s), {result['events_created']} event(s), "
                f"{result['detections_created']} detection(s) and {result['alerts_created']} alert(s)."
            )
        )
