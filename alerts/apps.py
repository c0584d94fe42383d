from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Alerts and notifications"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from alerts.services.alerts import on_camera_status_changed
        from cameras.services import camera_status_changed

        post_migrate.connect(ensure_global_preference, sender=self)
        # camera_offline rules (CONTRACT §5.5); the signal is sent after the status change committed.
        camera_status_changed.connect(on_camera_status_changed, dispatch_uid="alerts.camera_offline_rules")
        _connect_mqtt_receivers()


def _connect_mqtt_receivers() -> None:
    """MQTT camera status and Home Assistant discovery follow the cameras (CONTRACT §5.9), through signals only."""
    from django.db.models.signals import post_save

    from alerts.services import mqtt_publishing
    from cameras.models import Camera
    from cameras.services import camera_deleted, camera_status_changed

    camera_status_changed.connect(mqtt_publishing.on_camera_status_changed, dispatch_uid="alerts.mqtt_camera_status")
    post_save.connect(mqtt_publishing.on_camera_saved, sender=Camera, dispatch_uid="alerts.mqtt_camera_saved")
    camera_deleted.connect(mqtt_publishing.on_camera_deleted, dispatch_uid="alerts.mqtt_camera_deleted")


def ensure_global_preference(using: str = "default", **kwargs) -> None:
    """The global NotificationPreference row always exists (CONTRACT §1.3), also after a database flush."""
    from alerts.models import NotificationPreference

    manager = NotificationPreference.objects.using(using)
    if not manager.filter(camera__isnull=True).exists():
        manager.create(camera=None, enabled=True, severities=["medium", "high", "critical"], min_risk_score=0)
