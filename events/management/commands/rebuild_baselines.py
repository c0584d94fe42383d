"""``manage.py rebuild_baselines [--camera ID]``: full baseline recompute (CONTRACT §4.11, §8.1)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from cameras.models import Camera
from events.baselines import baselines_rebuild
from system.services import Actor, audit_record


class Command(BaseCommand):
    help = "Recompute the activity and class baselines of every camera, or of one camera."

    def add_arguments(self, parser):
        parser.add_argument("--camera", metavar="ID", help="only this camera (its id)")

    def handle(self, *args, camera: str | None = None, **options):
        if camera is not None and not Camera.objects.filter(pk=camera).exists():
            raise CommandError(f"Camera {camera} not found")
        with transaction.atomic():
            rebuilt = baselines_rebuild(camera)
            audit_record(
                Actor.system("manage.py rebuild_baselines"),
                "baseline_rebuilt",
                "camera",
                camera,
                details={"cameras": rebuilt, "scope": "camera" if camera else "all"},
            )
        noun = "camera" if rebuilt == 1 else "cameras"
        self.stdout.write(self.style.SUCCESS(f"Rebuilt baselines for {rebuilt} {noun}"))
