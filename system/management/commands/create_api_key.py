"""``manage.py create_api_key NAME [--expires-days N]`` (CONTRACT §8.1, §6.1).

The key goes alone to stdout, so ``KEY=$(python manage.py create_api_key bot)`` works; everything else goes to
stderr. Only the SHA-256 hash is stored: the key cannot be shown again.
"""

from __future__ import annotations

import argparse

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import IntegrityError

from system.models import ApiKey
from system.services import Actor, api_key_create

NAME_MAX_LENGTH = ApiKey._meta.get_field("name").max_length


def _positive_days(value: str) -> int:
    try:
        days = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of days, got {value!r}") from None
    if days < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {days}")
    return days


class Command(BaseCommand):
    help = "Create an API key and print it once (hsi_ + 32 URL-safe characters); only its hash is stored."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help=f"unique name of the key (at most {NAME_MAX_LENGTH} characters)")
        parser.add_argument(
            "--expires-days", type=_positive_days, default=None, metavar="N", help="expire the key after N days"
        )

    def handle(self, *args, name: str, expires_days: int | None, **options) -> None:
        name = name.strip()
        if not name:
            raise CommandError("The key name must not be blank.")
        if len(name) > NAME_MAX_LENGTH:
            raise CommandError(f"The key name must be at most {NAME_MAX_LENGTH} characters.")
        try:
            created = api_key_create(name, expires_days=expires_days, actor=Actor.system("cli"))
        except IntegrityError:
            raise CommandError(f"An API key named {name!r} already exists; choose another name.") from None
        expires_at = created.api_key.expires_at
        expiry = f"expires {expires_at.isoformat().replace('+00:00', 'Z')}" if expires_at else "never expires"
        self.stdout.write(created.plaintext)
        self.stderr.write(
            f"Created API key {name!r} ({expiry}). Send it in the X-API-Key header. "
            "It is shown only this once: store it now.",
            style_func=self.style.SUCCESS,
        )
