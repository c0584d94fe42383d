from django.apps import AppConfig


class SystemConfig(AppConfig):
    name = "system"
    verbose_name = "System"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from system.db_cascades import ensure_database_cascades

        post_migrate.connect(ensure_database_cascades, sender=self)
