"""The global notification preference row (CONTRACT §1.3)."""

from django.db import migrations


def create_global(apps, schema_editor):
    preference = apps.get_model("alerts", "NotificationPreference")
    if not preference.objects.filter(camera__isnull=True).exists():
        preference.objects.create(
            camera=None, enabled=True, severities=["medium", "high", "critical"], min_risk_score=0
        )


class Migration(migrations.Migration):
    dependencies = [("alerts", "0001_initial")]

    operations = [migrations.RunPython(create_global, migrations.RunPython.noop)]
