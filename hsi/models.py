"""Small shared model building blocks (no models of its own)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class TimestampedModel(models.Model):
    """``created_at`` / ``updated_at`` set by the application (CONTRACT §1)."""

    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        update_fields = kwargs.get("update_fields")
        if not self._state.adding:
            self.updated_at = timezone.now()
            if update_fields is not None and "updated_at" not in update_fields:
                kwargs["update_fields"] = [*update_fields, "updated_at"]
        super().save(*args, **kwargs)


def choices_check(field: str, choices: models.TextChoices | type, name: str) -> models.CheckConstraint:
    """A CHECK constraint that keeps an enum column inside its choices."""
    return models.CheckConstraint(condition=models.Q(**{f"{field}__in": [c for c, _ in choices.choices]}), name=name)
