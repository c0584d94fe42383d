"""``manage.py revoke_api_key NAME`` (CONTRACT §8.1): the key stops working at once."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from system.services import Actor, api_key_revoke


class Command(BaseCommand):
    help = "Revoke the API key with this name; requests with it get 401 from now on."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="name given to create_api_key")

    def handle(self, *args, name: str, **options) -> None:
        name = name.strip()
        started = timezone.now()
        api_key = api_key_revoke(name, actor=Actor.system("cli"))
        if api_key is None:
            raise CommandError(f"No API key named {name!r}.")
        revoked_at = api_key.revoked_at.isoformat().replace("+00:00", "Z")
        if api_key.revoked_at < started:
            self.stdout.write(f"API key {name!r} was already revoked at {revoked_at}.")
        else:
            self.stdout.write(self.style.SUCCESS(f"Revoked API key {name!r} at {revoked_at}."))
