"""Routes of the alert and notification endpoints (included under ``/api/``; CONTRACT §2.7–2.8)."""

from django.urls import include, path

urlpatterns = [
    path("", include("alerts.api.notification_urls")),
    path("", include("alerts.api.alert_urls")),
]
