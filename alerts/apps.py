from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Alerts and notifications"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        post_migrate.connect(ensure_global_preference, sender=self)


def ensure_global_preference(using: str = "default", **kwargs) -> None:
    """The global NotificationPreference row always exists (CONTRACT §1.3), also after a database flush."""
    from alerts.models import NotificationPreference

    manager = NotificationPreference.objects.using(using)
    if not manager.filter(camera__isnull=True).exists():
        manager.create(camera=None, enabled=True, severities=["medium", "high", "critical"], min_risk_score=0)
